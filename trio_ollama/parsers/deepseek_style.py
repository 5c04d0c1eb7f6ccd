"""The output of models trained on DeepSeek's chat format (Ollama's `deepseek3` and `cogito`
parsers): thinking up to `</think>`, then answer text, and tool calls between full-width-bar
tags:

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>...<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>

The families differ in what a call holds and in what they do with tool output the model
writes itself; `deepseek3.py` and `cogito.py` say that.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import DecodeError, tool_arguments
from trio_ollama.parsers.tagged import PrefillingParser, TagSearch
from trio_ollama.templates import ToolCall

__all__ = ["DeepSeekStyleParser", "arguments"]

log = logging.getLogger(__name__)

THINK_CLOSE = "</think>"
CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>"
TOOL_SEP = "<｜tool▁sep｜>"
OUTPUT_BEGIN, OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"
OUTPUTS_BEGIN, OUTPUTS_END = "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"


def arguments(raw: str) -> dict[str, Any] | None:
    """A call's JSON arguments as Go's `json.Unmarshal` into Ollama's arguments reads them, or
    None where it fails (these families log that and leave the call unread)."""
    try:
        return tool_arguments(raw)
    except DecodeError as exc:
        log.warning("tool call parsing failed: %s", exc)
        return None


class DeepSeekStyleParser(PrefillingParser):
    """The states and tags both families share. A subclass says when the output starts in
    thinking, how a call's text reads (`_read_call`), and which tag opens tool output in the
    answer (`_OUTPUT_OPEN`), and how that output is read (`_eat_output`)."""

    has_tool_support = True
    has_thinking_support = True
    preserved_tokens: ClassVar[tuple[str, ...]] = (
        THINK_CLOSE, CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, TOOL_SEP,
        OUTPUT_BEGIN, OUTPUT_END,
    )  # fmt: skip
    _OUTPUT_OPEN = OUTPUT_BEGIN
    # Whether blanks before the tool-output tag are dropped, as before the calls.
    _TRIM_BEFORE_OUTPUT = False

    def __init__(self) -> None:
        self._state = "content"  # "thinking", "content", "calls", "output"
        self._buffer = ""
        self._trim = False  # the blanks at the buffer's start go (a tag before them ate them)
        self._blanks_held = True
        self._stuck = False  # in "calls": the first call is one Ollama cannot read
        self._index = 0
        self._think_close = TagSearch(THINK_CLOSE)
        self._calls_begin = TagSearch(CALLS_BEGIN)
        self._output_open = TagSearch(self._OUTPUT_OPEN)
        self._call_begin = TagSearch(CALL_BEGIN)
        self._call_end = TagSearch(CALL_END)
        self._calls_end = TagSearch(CALLS_END)
        self._searches: tuple[TagSearch, ...] = (
            self._think_close, self._calls_begin, self._output_open,
            self._call_begin, self._call_end, self._calls_end,
        )  # fmt: skip

    def _starts_thinking(
        self, tools: Sequence[Mapping[str, Any]], think: bool | str | None
    ) -> bool:
        raise NotImplementedError

    def _read_call(self, raw: str) -> tuple[str, dict[str, Any]] | None:
        raise NotImplementedError

    def _eat_output(self, content: list[str]) -> bool:
        raise NotImplementedError

    def _start(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._state = "thinking" if self._starts_thinking(tools, think) else "content"
        self._trim = False
        self._stuck = False

    def _finish(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> None:
        if done and self._state == "content" and self._buffer:
            # The answer streams whole in Ollama: what was held for a tag is answer after all.
            content.append(self._buffer)
            self._buffer = ""

    def _eat(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> bool:
        acc = self._buffer
        if self._state == "thinking":
            return self._read_to(self._think_close, thinking, "content")
        if self._state == "content":
            calls_at, output_at = self._calls_begin.find(acc), self._output_open.find(acc)
            if calls_at != -1 and (output_at == -1 or calls_at < output_at):
                if before := acc[:calls_at].rstrip():
                    content.append(before)
                self._consume(acc[calls_at + len(CALLS_BEGIN) :], trim=False, state="calls")
                return True
            if output_at != -1:
                before = acc[:output_at]
                if self._TRIM_BEFORE_OUTPUT:
                    before = before.rstrip()
                if before:
                    content.append(before)
                rest = acc[output_at + len(self._OUTPUT_OPEN) :]
                self._consume(rest, trim=False, state="output")
                return True
            self._stream(content, acc, CALLS_BEGIN, self._OUTPUT_OPEN)
            self._reset()
            return False
        if self._state == "calls":
            return self._eat_calls(calls)
        return self._eat_output(content)

    def _eat_calls(self, calls: list[ToolCall]) -> bool:
        acc = self._buffer
        begin = -1 if self._stuck else self._call_begin.find(acc)
        if begin != -1:
            start = begin + len(CALL_BEGIN)
            end = self._call_end.find(acc, start)
            if end != -1:
                read = self._read_call(acc[start:end])
                if read is not None:
                    name, args = read
                    calls.append(self._numbered(name, args))
                    self._consume(acc[end + len(CALL_END) :], trim=True)
                    return True
                # Ollama tries this call again at every piece and fails the same way: only
                # the end of the calls moves on.
                self._stuck = True
        return self._skip_to(self._calls_end, acc)

    def _skip_to(self, search: TagSearch, acc: str) -> bool:
        """Past `search`'s tag, back to the answer, if the buffer holds it."""
        at = search.find(acc)
        if at == -1:
            return False
        self._stuck = False
        self._consume(acc[at + len(search.tag) :], trim=True, state="content")
        return True
