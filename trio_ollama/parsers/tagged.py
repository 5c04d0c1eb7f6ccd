"""What the tag-driven family parsers (DeepSeek 3, Cogito, GLM, Cohere, Laguna) share beyond
qwen3.py's helpers: a search for a tag in a buffer that grows at its end, which reads each
character about once however small the pieces, and Ollama's reading of a `think` value."""

from __future__ import annotations

from trio_ollama.templates.chat import thinks

__all__ = ["TagSearch", "thinks"]


class TagSearch:
    """Where `tag` first occurs in a buffer from `start` on, for a buffer that only grows at
    its end between calls: each call starts where the last one could not have missed it, so a
    long buffer arriving in small pieces is read once, not once per piece. `reset` when the
    buffer is replaced or `start` moves."""

    __slots__ = ("_from", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._from = 0

    def reset(self) -> None:
        self._from = 0

    def find(self, buffer: str, start: int = 0) -> int:
        i = buffer.find(self.tag, max(start, self._from))
        self._from = i if i != -1 else max(start, len(buffer) - len(self.tag) + 1)
        return i
