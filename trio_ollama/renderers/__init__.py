"""Ollama's built-in prompt renderers, chosen by a model's `renderer` (its Modelfile's
RENDERER, or the config Ollama's library ships): they write a family's prompt in code rather
than through its template, as Ollama's `model/renderers` package does.

A renderer takes the conversation (the model's SYSTEM and MESSAGEs already in it), the
request's tools and its `think` (a bool, a level such as "high", or None when not asked) and
returns the whole prompt, ready for the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from trio_ollama.renderers.functiongemma import FunctionGemmaRenderer
from trio_ollama.renderers.lfm2 import LFM2Renderer
from trio_ollama.renderers.nemotron3nano import Nemotron3NanoRenderer
from trio_ollama.renderers.olmo3 import Olmo3Renderer
from trio_ollama.renderers.olmo3_think import Olmo3ThinkRenderer
from trio_ollama.renderers.qwen3vl import Qwen3VLRenderer
from trio_ollama.renderers.qwen35 import Qwen35Renderer
from trio_ollama.templates import Message

__all__ = ["Renderer", "builtin_renderer"]


class Renderer(Protocol):
    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        think: bool | str | None,
    ) -> str: ...


# By the name a Modelfile's RENDERER gives; each family's module adds its own.
_RENDERERS: dict[str, Callable[[], Renderer]] = {
    # wt-j's families (issue 31)
    "functiongemma": FunctionGemmaRenderer,
    "lfm2": lambda: LFM2Renderer(thinking=False),
    "lfm2-thinking": lambda: LFM2Renderer(thinking=True),
    "nemotron-3-nano": lambda: Nemotron3NanoRenderer(v35=False),
    "nemotron-3.5-nano": lambda: Nemotron3NanoRenderer(v35=True),
    "olmo3": lambda: Olmo3Renderer(extended_system=False),
    "olmo3.1": lambda: Olmo3Renderer(extended_system=True),
    "olmo3-32b-think": lambda: Olmo3ThinkRenderer(variant_32b=True),
    "olmo3-think": lambda: Olmo3ThinkRenderer(variant_32b=False),
    "qwen3-vl-instruct": lambda: Qwen3VLRenderer(thinking=False),
    "qwen3-vl-thinking": lambda: Qwen3VLRenderer(thinking=True),
    "qwen3.5": Qwen35Renderer,
}


def builtin_renderer(name: str) -> Renderer | None:
    """The renderer Ollama selects for `name`, if this server has it (others: none, and the
    model's template renders the prompt, as for a model without a RENDERER)."""
    make = _RENDERERS.get(name)
    return make() if make is not None else None
