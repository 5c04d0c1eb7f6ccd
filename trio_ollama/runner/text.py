"""Streaming text out of token pieces: whole UTF-8 characters only, stop strings never emitted."""

from __future__ import annotations

import codecs
from collections.abc import Sequence


def held_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of `text` that could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class TextStream:
    """Turns token bytes into text to emit, holding back what a stop string might still claim."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def push(self, piece: bytes) -> tuple[str, bool]:
        """Add a token's bytes. Returns (text safe to emit, whether a stop string was hit)."""
        self._held += self._decoder.decode(piece)
        if not self.stops:
            out, self._held = self._held, ""
            return out, False
        cut = min((i for i in (self._held.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self._held = self._held[:cut], ""
            return out, True
        keep = held_suffix(self._held, self.stops)
        split = len(self._held) - keep
        out, self._held = self._held[:split], self._held[split:]
        return out, False

    def flush(self) -> str:
        """At the end of generation: whatever is held was not a stop string after all."""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out
