"""DeepSeek V3.1's output, as Ollama's built-in `deepseek3` parser reads it: a call is
`NAME<｜tool▁sep｜>{JSON arguments}`, and tool output the model writes itself
(`<｜tool▁output▁begin｜>...<｜tool▁output▁end｜>`) is part of the answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.parsers.deepseek_style import (
    OUTPUT_END,
    TOOL_SEP,
    DeepSeekStyleParser,
    arguments,
)
from trio_ollama.parsers.tagged import TagSearch
from trio_ollama.templates import thinks

__all__ = ["DeepSeek3Parser"]


class DeepSeek3Parser(DeepSeekStyleParser):
    def __init__(self) -> None:
        super().__init__()
        self._output_end = TagSearch(OUTPUT_END)
        self._searches += (self._output_end,)

    def _starts_thinking(
        self, tools: Sequence[Mapping[str, Any]], think: bool | str | None
    ) -> bool:
        # The prompt opens <think> when the request thinks: the output starts inside it.
        return thinks(think)

    def _read_call(self, raw: str) -> tuple[str, dict[str, Any]] | None:
        name, sep, args = raw.partition(TOOL_SEP)
        if not sep:
            return None
        parsed = arguments(args.strip())
        return None if parsed is None else (name.strip(), parsed)

    def _eat_output(self, content: list[str]) -> bool:
        # The output is answer text, blanks and all, up to its end tag.
        acc = self._buffer
        end = self._output_end.find(acc)
        if end == -1:
            return False
        if acc[:end]:
            content.append(acc[:end])
        self._consume(acc[end + len(OUTPUT_END) :], trim=False, state="content")
        return True
