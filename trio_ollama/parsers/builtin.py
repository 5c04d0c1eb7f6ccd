"""Ollama's built-in output parsers, chosen by a model's `parser` (its Modelfile's PARSER, or
the config Ollama's library ships): they know a family's tags without reading its template.

Each takes the request's tools and `think` once (`init`: a bool, a level such as "high", or
None when the request does not say), then the output piece by piece; `add`
returns the answer text, the thinking text and the complete calls so far (indexed from 0, ids
left to the caller). A call the model botched raises `ParseError`, as Ollama's do.

Ollama's `Init` also takes the conversation's last message and may rename the tools the prompt
shows; a parser that needs either has the optional methods of `Prefills` (called after `init`
on the chat path, with the last message whatever its role) and `RenamesTools` (a pure function
of the tools: the prompt's renderer or template gets what it returns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from trio_ollama.parsers.cogito import CogitoParser
from trio_ollama.parsers.cohere import CohereParser
from trio_ollama.parsers.deepseek3 import DeepSeek3Parser
from trio_ollama.parsers.functiongemma import FunctionGemmaParser
from trio_ollama.parsers.gemma4 import Gemma4Parser
from trio_ollama.parsers.glimmer import GlimmerParser
from trio_ollama.parsers.glm47 import GLM47Parser
from trio_ollama.parsers.glmocr import GlmOcrParser
from trio_ollama.parsers.harmony import HarmonyParser
from trio_ollama.parsers.laguna import LagunaParser, PoolsideV1Parser
from trio_ollama.parsers.lfm2 import LFM2Parser
from trio_ollama.parsers.ministral import MinistralParser
from trio_ollama.parsers.nemotron3nano import Nemotron3NanoParser
from trio_ollama.parsers.olmo3 import Olmo3Parser
from trio_ollama.parsers.olmo3_think import Olmo3ThinkParser
from trio_ollama.parsers.qwen3 import ParseError, Qwen3CoderParser, Qwen3Parser
from trio_ollama.parsers.qwen3vl import Qwen3VLParser
from trio_ollama.parsers.qwen35 import Qwen35Parser
from trio_ollama.templates import Message, ToolCall

__all__ = ["BuiltinParser", "ParseError", "Prefills", "RenamesTools", "builtin_parser"]


class BuiltinParser(Protocol):
    @property
    def has_tool_support(self) -> bool: ...

    @property
    def has_thinking_support(self) -> bool: ...

    @property
    def preserved_tokens(self) -> tuple[str, ...]:
        """The tags this parser reads that a vocabulary may hold as control tokens: the runner
        writes those as text, where it drops other control tokens (Ollama's PreservedTokens)."""
        ...

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None: ...

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]: ...


@runtime_checkable
class Prefills(Protocol):
    def prefill(self, last: Message) -> None: ...


@runtime_checkable
class RenamesTools(Protocol):
    def prompt_tools(self, tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]: ...


_PARSERS: dict[str, Callable[[], BuiltinParser]] = {
    "harmony": HarmonyParser,
    "qwen3": lambda: Qwen3Parser(thinking_support=False, default_thinking=False),
    "qwen3-coder": Qwen3CoderParser,
    "qwen3-thinking": lambda: Qwen3Parser(thinking_support=True, default_thinking=True),
    "cogito": CogitoParser,
    "cohere": CohereParser,
    "deepseek3": DeepSeek3Parser,
    "functiongemma": FunctionGemmaParser,
    "glm-4.7": GLM47Parser,
    "glm-ocr": GlmOcrParser,
    "laguna": LagunaParser,
    "lfm2": lambda: LFM2Parser(thinking=False),
    "lfm2-thinking": lambda: LFM2Parser(thinking=True),
    "ministral": MinistralParser,
    "nemotron-3-nano": Nemotron3NanoParser,
    "nemotron-3.5-nano": Nemotron3NanoParser,
    "olmo3": Olmo3Parser,
    "olmo3-think": Olmo3ThinkParser,
    "poolside-v1": PoolsideV1Parser,
    "qwen3-vl-instruct": lambda: Qwen3VLParser(thinking=False),
    "qwen3-vl-thinking": lambda: Qwen3VLParser(thinking=True),
    "qwen3.5": Qwen35Parser,
    "gemma4": lambda: Gemma4Parser(thinking=True),
    "gemma4-no-thinking": lambda: Gemma4Parser(thinking=False),
    "ornith": Qwen35Parser,
    "glimmer": GlimmerParser,
}


def builtin_parser(name: str) -> BuiltinParser | None:
    """The parser Ollama selects for `name`, if this server has it (others: none, and the
    template-driven parsers do the work, as for a model without a PARSER)."""
    make = _PARSERS.get(name)
    return make() if make is not None else None
