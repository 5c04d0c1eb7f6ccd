"""Qwen 3.5's output, as Ollama's `qwen3.5` parser reads it: thinking first unless the request
turned it off (the prompt opened `<think>`; a checkpoint may open it again), then Qwen 3 Coder's
answer text and `<tool_call><function=...>` calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.qwen3 import THINK_OPEN, TOOL_OPEN, Qwen3CoderParser, Qwen3Parser
from trio_ollama.parsers.thinkfirst import Output, ThinkFirst

__all__ = ["Qwen35Parser", "thinks"]


def thinks(think: bool | str | None) -> bool:
    """Ollama's `ThinkValue.Bool()`, with no value meaning yes: a level is a yes, any other
    text a no."""
    if think is None:
        return True
    if isinstance(think, str):
        return think in ("high", "medium", "low", "max")
    return think


class Qwen35Parser:
    preserved_tokens: ClassVar[tuple[str, ...]] = Qwen3Parser.preserved_tokens

    has_tool_support = True
    has_thinking_support = True

    def __init__(self) -> None:
        self._parser = ThinkFirst(Qwen3CoderParser(), ends=(TOOL_OPEN,), open_tag=THINK_OPEN)

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._parser.start(tools, think, thinking=thinks(think))

    def add(self, text: str, done: bool) -> Output:
        return self._parser.add(text, done)
