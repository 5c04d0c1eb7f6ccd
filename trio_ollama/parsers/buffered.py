"""What the streaming parsers share: a buffer that grows by the piece without being copied, what
of it to hold back for a tag that may be starting, and the numbering of the calls they read."""

from __future__ import annotations

from typing import Any

from trio_ollama.templates import ToolCall, ToolCallFunction


def _overlap(text: str, tag: str) -> int:
    """How long an end of `text` is a start of `tag` (the longest)."""
    first = tag[0]
    # Most text holds no start of the tag among its last characters: one search says so.
    if text.find(first, max(0, len(text) - len(tag) + 1)) == -1:
        return 0
    # Else only where the tag's first character stands can it start: the earliest that does
    # is the longest.
    at = text.find(first, max(0, len(text) - len(tag)))
    while at != -1:
        if tag.startswith(text[at:]):
            return len(text) - at
        at = text.find(first, at + 1)
    return 0


def _trailing_space(text: str) -> int:
    return len(text) - len(text.rstrip())


def _release(acc: str, *tags: str) -> tuple[str, str]:
    """(text safe to emit, text to hold): hold what may begin one of `tags`, and the blanks
    before it or at the end (they may precede a tag, which eats them)."""
    n = max((_overlap(acc, t) for t in tags), default=0)
    before = acc[: len(acc) - n]
    cut = len(before) - _trailing_space(before)
    return acc[:cut], acc[cut:]


class Buffered:
    """A parser that holds output in `_buffer` until it can tell what it is."""

    _buffer: str
    # The index the next call gets: calls are numbered from 0 in the order the output gives them.
    _index: int

    def _append(self, piece: str) -> str:
        """`_buffer` with `piece` at its end, grown in place. With the only reference held
        here, CPython extends the string where it lies; `self._buffer += piece` would copy all
        of it for every piece (200,000 pieces of five characters: 83 s here, against 0.06 s)."""
        buffer, self._buffer = self._buffer, ""
        buffer += piece
        self._buffer = buffer
        return buffer

    def _stream(self, out: list[str], acc: str, *tags: str) -> None:
        """`acc`, the buffer as read, goes to `out` but for what may begin one of `tags` (and
        the blanks before it), which the buffer holds."""
        text, self._buffer = _release(acc, *tags)
        if text:
            out.append(text)

    def _numbered(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        """The output's next call."""
        call = ToolCall(
            function=ToolCallFunction(name=name, arguments=arguments, index=self._index)
        )
        self._index += 1
        return call
