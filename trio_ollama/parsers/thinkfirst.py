"""Output that thinks first: text up to a closing tag (`</think>`) is thinking, the rest goes to
another parser (the family's tool calls, or the answer as it is). Qwen 3.5, Qwen 3 VL, Nemotron
3 Nano and Olmo 3 Think write this shape, with small differences the options below name.

A tool call's opening tag before the closing tag also ends the thinking (some checkpoints forget
`</think>`); the earlier of the two tags counts, whatever piece each came in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from trio_ollama.parsers.buffered import Buffered
from trio_ollama.parsers.qwen3 import _first_tag, _more_blanks
from trio_ollama.templates import ToolCall

__all__ = ["Passthrough", "ThinkFirst"]

Output = tuple[str, str, list[ToolCall]]


class _Rest(Protocol):
    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None: ...

    def add(self, text: str, done: bool) -> Output: ...


class Passthrough:
    """The answer after the thinking, as it comes (no tool calls)."""

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        pass

    def add(self, text: str, done: bool) -> Output:
        return text, "", []


class ThinkFirst(Buffered):
    """Thinking until `close` (or one of `ends`, which the rest then reads), then `rest`.

    `open_tag`: an opening tag at the very start is dropped (the prompt opened the thinking,
    some checkpoints open it again), with the blanks after it. `strip_leading`: blanks before
    the thinking are dropped too (Nemotron), not only after an opening tag.
    """

    def __init__(
        self,
        rest: _Rest,
        *,
        close: str = "</think>",
        ends: tuple[str, ...] = (),
        open_tag: str = "",
        strip_leading: bool = False,
    ) -> None:
        self._rest = rest
        self._close = close
        self._ends = ends
        self._open = open_tag
        self._strip_leading = strip_leading
        self._state = "content"
        self._buffer = ""
        self._blanks_held = True

    def start(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None, *,
              thinking: bool) -> None:  # fmt: skip
        """Begin an output: inside the thinking (`thinking`), or straight at the rest."""
        self._rest.init(tools, think)
        self._buffer = ""
        self._blanks_held = True
        if not thinking:
            self._state = "content"
        elif self._open:
            self._state = "maybe_open"
        else:
            self._state = "thinking_start" if self._strip_leading else "thinking"

    def add(self, text: str, done: bool) -> Output:
        if self._state == "content":
            return self._rest.add(text, done)
        self._append(text)
        if _more_blanks(self._blanks_held, text) and self._state in ("thinking", "maybe_open"):
            return "", "", []
        thinking: list[str] = []
        rest = self._eat(thinking)
        self._blanks_held = not self._buffer or self._buffer.isspace()
        if rest is None:
            return "", "".join(thinking), []
        self._buffer = ""
        content, more, calls = self._rest.add(rest, done)
        return content, "".join(thinking) + more, calls

    def _eat(self, thinking: list[str]) -> str | None:
        """Read the buffer; the text for the rest once the thinking is over, else None."""
        while True:
            acc = self._buffer
            if self._state in ("maybe_open", "thinking_start", "after"):
                trimmed = acc.lstrip()
                if self._state == "maybe_open":
                    if trimmed.startswith(self._open):
                        self._buffer = trimmed[len(self._open) :]
                        self._state = "thinking_start"
                        continue
                    if self._open.startswith(trimmed):  # blank, or the tag's start
                        if self._strip_leading:
                            self._buffer = trimmed
                        return None
                    self._state = "thinking"
                    if self._strip_leading:
                        self._buffer = trimmed
                    continue
                self._buffer = trimmed
                if not trimmed:
                    return None
                if self._state == "after":
                    self._state = "content"
                    return trimmed
                self._state = "thinking"
                continue
            # "thinking"
            at, tag = _first_tag(acc, self._close, *self._ends)
            if tag:
                if before := acc[:at].rstrip():
                    thinking.append(before)
                if tag == self._close:
                    self._buffer = acc[at + len(tag) :]
                    self._state = "after"
                    continue
                self._state = "content"
                return acc[at:]
            self._stream(thinking, acc, self._close, *self._ends)
            return None
