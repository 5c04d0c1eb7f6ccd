"""Nemotron 3 Nano's output, as Ollama's `nemotron-3-nano` (and `nemotron-3.5-nano`) parser
reads it: thinking first unless the request turned it off (blanks and a repeated `<think>`
before it dropped), then Qwen 3 Coder's answer text and `<tool_call><function=...>` calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.qwen3 import THINK_OPEN, TOOL_OPEN, Qwen3CoderParser, Qwen3Parser
from trio_ollama.parsers.qwen35 import thinks
from trio_ollama.parsers.thinkfirst import Output, ThinkFirst

__all__ = ["Nemotron3NanoParser"]


class Nemotron3NanoParser:
    preserved_tokens: ClassVar[tuple[str, ...]] = Qwen3Parser.preserved_tokens

    has_tool_support = True
    has_thinking_support = True

    def __init__(self) -> None:
        self._parser = ThinkFirst(
            Qwen3CoderParser(), ends=(TOOL_OPEN,), open_tag=THINK_OPEN, strip_leading=True
        )

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._parser.start(tools, think, thinking=thinks(think))

    def add(self, text: str, done: bool) -> Output:
        return self._parser.add(text, done)
