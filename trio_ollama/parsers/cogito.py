"""Cogito's output, as Ollama's built-in `cogito` parser reads it: DeepSeek's tags, a call
written `function<｜tool▁sep｜>NAME` and its arguments in a ```json fence, and tool outputs the
model writes itself (`<｜tool▁outputs▁begin｜>...<｜tool▁outputs▁end｜>`) dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.deepseek_style import (
    OUTPUT_BEGIN,
    OUTPUT_END,
    OUTPUTS_BEGIN,
    OUTPUTS_END,
    TOOL_SEP,
    DeepSeekStyleParser,
    arguments,
)
from trio_ollama.parsers.tagged import TagSearch
from trio_ollama.templates import thinks

__all__ = ["CogitoParser"]

_FENCE_OPEN, _FENCE_CLOSE = "\n```json\n", "\n```"


class CogitoParser(DeepSeekStyleParser):
    preserved_tokens: ClassVar[tuple[str, ...]] = (
        *DeepSeekStyleParser.preserved_tokens,
        OUTPUTS_BEGIN,
        OUTPUTS_END,
    )
    _OUTPUT_OPEN = OUTPUTS_BEGIN
    _TRIM_BEFORE_OUTPUT = True

    def __init__(self) -> None:
        super().__init__()
        self._output_begin = TagSearch(OUTPUT_BEGIN)
        self._output_end = TagSearch(OUTPUT_END)
        self._outputs_end = TagSearch(OUTPUTS_END)
        self._searches += (self._output_begin, self._output_end, self._outputs_end)

    def _starts_thinking(
        self, tools: Sequence[Mapping[str, Any]], think: bool | str | None
    ) -> bool:
        # Cogito does not think when it is offered tools: its prompt does not ask it to.
        return thinks(think) and not tools

    def _read_call(self, raw: str) -> tuple[str, dict[str, Any]] | None:
        _, sep, name_and_args = raw.partition(TOOL_SEP)
        name, fence, rest = name_and_args.partition(_FENCE_OPEN)
        if not sep or not fence or _FENCE_CLOSE not in rest:
            return None
        parsed = arguments(rest[: rest.index(_FENCE_CLOSE)])
        return None if parsed is None else (name.strip(), parsed)

    def _eat_output(self, content: list[str]) -> bool:
        # Each output the model wrote goes unseen; the answer resumes after the last.
        acc = self._buffer
        begin = self._output_begin.find(acc)
        if begin != -1:
            end = self._output_end.find(acc, begin + len(OUTPUT_BEGIN))
            if end != -1:
                self._consume(acc[end + len(OUTPUT_END) :], trim=True)
                return True
        return self._skip_to(self._outputs_end, acc)
