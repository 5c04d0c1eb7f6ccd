"""Olmo 3 Think's output, as Ollama's `olmo3-think` parser reads it: always thinking first (the
prompt ends with `<think>`), up to `</think>`; then the answer. No tool calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.thinkfirst import Output, Passthrough, ThinkFirst

__all__ = ["Olmo3ThinkParser"]


class Olmo3ThinkParser:
    preserved_tokens: ClassVar[tuple[str, ...]] = ("</think>",)

    has_tool_support = False
    has_thinking_support = True

    def __init__(self) -> None:
        self._parser = ThinkFirst(Passthrough())

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._parser.start(tools, think, thinking=True)

    def add(self, text: str, done: bool) -> Output:
        return self._parser.add(text, done)
