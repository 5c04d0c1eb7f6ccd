"""What the streaming parsers share: a buffer that grows by the piece without being copied, and
the numbering of the calls they read."""

from __future__ import annotations

from typing import Any

from trio_ollama.templates import ToolCall, ToolCallFunction


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

    def _numbered(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        """The output's next call."""
        call = ToolCall(
            function=ToolCallFunction(name=name, arguments=arguments, index=self._index)
        )
        self._index += 1
        return call
