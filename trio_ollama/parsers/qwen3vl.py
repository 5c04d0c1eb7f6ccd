"""Qwen 3 VL's output, as Ollama's `qwen3-vl-instruct` and `qwen3-vl-thinking` parsers read it:
the thinking variant starts inside `<think>` (its prompt opened it, whatever the request's
`think`), then answer text and `<tool_call>` sections holding JSON `{"name", "arguments"}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import json_kind
from trio_ollama.parsers.qwen3 import TOOL_OPEN, ParseError, Qwen3Parser, _go_json
from trio_ollama.parsers.thinkfirst import Output, ThinkFirst
from trio_ollama.templates import ToolCall

__all__ = ["Qwen3VLParser"]


class _Calls(Qwen3Parser):
    """Qwen 3's answer and calls, each call read as Go reads JSON into a `ToolCallFunction`:
    no name is no error here, a field of the wrong type is."""

    def __init__(self) -> None:
        super().__init__(thinking_support=False, default_thinking=False)

    def _eat(self, content: list[str], thinking: list[str], calls: list[ToolCall]) -> bool:
        before = len(calls)
        again = super()._eat(content, thinking, calls)
        if len(calls) > before and not self._buffer:
            # Blanks after a call are dropped in the pieces that follow too (Qwen 3's parser
            # drops them only from the piece the call ended in).
            self._state = "think_done"
        return again

    def _call(self, raw: str) -> ToolCall:
        data = _go_json(raw)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ParseError(
                f"json: cannot unmarshal {json_kind(data)} into Go value of type"
                " api.ToolCallFunction"
            )
        name = data.get("name")
        args = data.get("arguments")
        for field, value, kind, ok in (
            ("name", name, "string", name is None or isinstance(name, str)),
            ("arguments", args, "api.ToolCallFunctionArguments",
             args is None or isinstance(args, dict)),
        ):  # fmt: skip
            if not ok:
                raise ParseError(
                    f"json: cannot unmarshal {json_kind(value)} into Go struct field"
                    f" ToolCallFunction.{field} of type {kind}"
                )
        return self._numbered(name or "", args or {})


class Qwen3VLParser:
    preserved_tokens: ClassVar[tuple[str, ...]] = ("</think>", "<tool_call>", "</tool_call>")

    has_tool_support = True

    def __init__(self, *, thinking: bool) -> None:
        self.has_thinking_support = thinking
        self._parser = ThinkFirst(_Calls(), ends=(TOOL_OPEN,))

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        # Ollama's parser ignores `think`: the thinking variant's prompt always opens it.
        self._parser.start(tools, think, thinking=self.has_thinking_support)

    def add(self, text: str, done: bool) -> Output:
        return self._parser.add(text, done)
