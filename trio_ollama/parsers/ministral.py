"""Ministral's output, as Ollama's `ministral` parser reads it: answer text, `[THINK]...[/THINK]`
thinking, and calls written `[TOOL_CALLS]name[ARGS]{json}`; a call must name an offered tool.

Each call's JSON is followed bracket by bracket as it comes (the state kept between pieces), so a
long call costs its length, not its length times its pieces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import BracketScanner, DecodeError, tool_arguments
from trio_ollama.parsers.buffered import Buffered, _overlap
from trio_ollama.parsers.qwen3 import ParseError, _first_tag, _more_blanks
from trio_ollama.parsers.tagged import TagSearch
from trio_ollama.templates import ToolCall

__all__ = ["MinistralParser"]

TOOL_CALLS, THINK, THINK_END, ARGS = "[TOOL_CALLS]", "[THINK]", "[/THINK]", "[ARGS]"


class _JSONEnd:
    """Where the first JSON value (object or array) in a growing text ends, each character
    read once: Ollama's `findJSONEnd` (brackets of either kind counted alike)."""

    def __init__(self) -> None:
        self._scanner = BracketScanner()
        self._depth = 0
        self._scanned = 0

    def find(self, text: str) -> int:
        for i in self._scanner.brackets(text, self._scanned):
            self._depth += 1 if text[i] in "{[" else -1
            if self._depth == 0:
                return i
        self._scanned = len(text)
        return -1


class MinistralParser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (TOOL_CALLS, THINK, THINK_END, ARGS)

    has_tool_support = True

    def __init__(self, *, thinking: bool = False) -> None:
        self.has_thinking_support = thinking
        self._names: set[str] = set()
        self._state = "content"
        self._buffer = ""
        self._args = TagSearch(ARGS)  # in "name": the end of the call's name
        self._name = ""
        self._json = _JSONEnd()
        self._blanks_held = True
        self._index = 0

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._names = {str((t.get("function") or {}).get("name") or "") for t in tools}
        self._state = "thinking" if self.has_thinking_support else "content"
        self._buffer = ""
        self._args.reset()
        self._blanks_held = True
        self._index = 0

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        if _more_blanks(self._blanks_held, text) and self._state == "content":
            return "", "", []
        content: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        while self._eat(content, thinking, calls):
            pass
        # Only where a run of blanks is held (a call's text may be long: not read again here).
        self._blanks_held = self._state in ("content",) and (
            not self._buffer or self._buffer.isspace()
        )
        return "".join(content), "".join(thinking), calls

    def _eat(self, content: list[str], thinking: list[str], calls: list[ToolCall]) -> bool:
        acc = self._buffer
        if self._state == "content":
            at, tag = _first_tag(acc, TOOL_CALLS, THINK)
            if tag:
                if before := acc[:at].rstrip():
                    content.append(before)
                self._buffer = acc[at + len(tag) :]
                self._state = "name" if tag == TOOL_CALLS else "thinking"
                self._args.reset()
                return True
            self._stream(content, acc, TOOL_CALLS, THINK)
            return False
        if self._state == "after_think":
            self._buffer = acc.lstrip()
            if not self._buffer:
                return False
            self._state = "content"
            return True
        if self._state == "thinking":
            before, found, after = acc.partition(THINK_END)
            if found:
                if before:
                    thinking.append(before)
                self._buffer = after.lstrip()
                # The blanks after it go, in whatever piece they come.
                self._state = "content" if self._buffer else "after_think"
                return True
            n = _overlap(acc, THINK_END)
            if acc[: len(acc) - n]:
                thinking.append(acc[: len(acc) - n])
            self._buffer = acc[len(acc) - n :]
            return False
        if self._state == "name":
            i = self._args.find(acc)
            if i == -1:
                return False
            self._name, self._buffer = acc[:i], acc[i + len(ARGS) :]
            self._state = "args"
            self._json = _JSONEnd()
            return True
        end = self._json.find(acc)
        if end == -1:
            return False
        raw, self._buffer = acc[: end + 1], acc[end + 1 :]
        self._state = "content"
        calls.append(self._call(self._name, raw))
        return True

    def _call(self, name: str, raw: str) -> ToolCall:
        if name not in self._names:
            raise ParseError(f"tool '{name}' not found")
        try:
            args = tool_arguments(raw)
        except DecodeError as exc:
            raise ParseError(str(exc).removeprefix("invalid JSON: ")) from None
        return self._numbered(name, args)
