"""Ollama's built-in output parsers, chosen by a model's `parser` (its Modelfile's PARSER, or
the config Ollama's library ships): they know a family's tags without reading its template.

Each takes the request's tools and `think` once (`init`: a bool, a level such as "high", or
None when the request does not say), then the output piece by piece; `add`
returns the answer text, the thinking text and the complete calls so far (indexed from 0, ids
left to the caller). A call the model botched raises `ParseError`, as Ollama's do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from trio_ollama.parsers.cogito import CogitoParser
from trio_ollama.parsers.cohere import CohereParser
from trio_ollama.parsers.deepseek3 import DeepSeek3Parser
from trio_ollama.parsers.glm47 import GLM47Parser
from trio_ollama.parsers.glmocr import GlmOcrParser
from trio_ollama.parsers.laguna import LagunaParser, PoolsideV1Parser
from trio_ollama.parsers.qwen3 import ParseError, Qwen3CoderParser, Qwen3Parser
from trio_ollama.templates import ToolCall

__all__ = ["BuiltinParser", "ParseError", "builtin_parser"]


class BuiltinParser(Protocol):
    @property
    def has_tool_support(self) -> bool: ...

    @property
    def has_thinking_support(self) -> bool: ...

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None: ...

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]: ...


_PARSERS: dict[str, Callable[[], BuiltinParser]] = {
    "qwen3": lambda: Qwen3Parser(thinking_support=False, default_thinking=False),
    "qwen3-thinking": lambda: Qwen3Parser(thinking_support=True, default_thinking=True),
    "qwen3-coder": Qwen3CoderParser,
    # wt-i's families (issue 31)
    "cogito": CogitoParser,
    "cohere": CohereParser,
    "deepseek3": DeepSeek3Parser,
    "glm-4.7": GLM47Parser,
    "glm-ocr": GlmOcrParser,
    "laguna": LagunaParser,
    "poolside-v1": PoolsideV1Parser,
}


def builtin_parser(name: str) -> BuiltinParser | None:
    """The parser Ollama selects for `name`, if this server has it (others: none, and the
    template-driven parsers do the work, as for a model without a PARSER)."""
    make = _PARSERS.get(name)
    return make() if make is not None else None
