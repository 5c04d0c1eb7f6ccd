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

from trio_ollama.renderers.cogito import CogitoRenderer
from trio_ollama.renderers.cohere import CohereRenderer
from trio_ollama.renderers.deepseek3 import DeepSeek3Renderer
from trio_ollama.renderers.glm47 import GLM47Renderer
from trio_ollama.renderers.glmocr import GlmOcrRenderer
from trio_ollama.renderers.laguna import LagunaRenderer, PoolsideV1Renderer
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
    # wt-i's families (issue 31)
    "cogito": CogitoRenderer,
    "cohere": CohereRenderer,
    "deepseek3.1": DeepSeek3Renderer,
    "glm-4.7": GLM47Renderer,
    "glm-ocr": GlmOcrRenderer,
    "laguna": LagunaRenderer,
    "poolside-v1": PoolsideV1Renderer,
}


def builtin_renderer(name: str) -> Renderer | None:
    """The renderer Ollama selects for `name`, if this server has it (others: none, and the
    model's template renders the prompt, as for a model without a RENDERER)."""
    make = _RENDERERS.get(name)
    return make() if make is not None else None
