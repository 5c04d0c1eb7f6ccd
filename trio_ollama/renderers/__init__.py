"""Ollama's built-in prompt renderers, chosen by a model's `renderer` (its Modelfile's
RENDERER, or the config Ollama's library ships): they write a family's prompt in code rather
than through its template, as Ollama's `model/renderers` package does.

A renderer takes the conversation (the model's SYSTEM and MESSAGEs already in it), the
request's tools and its `think` (a bool, a level such as "high", or None when not asked) and
returns the whole prompt, ready for the runner.

A name Ollama does not know is an error when a request renders (Ollama stores any name at
create and fails there); a name Ollama knows but this server does not have yet leaves the
prompt to the model's template.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.cogito import CogitoRenderer
from trio_ollama.renderers.cohere import CohereRenderer
from trio_ollama.renderers.common import Tools
from trio_ollama.renderers.deepseek3 import DeepSeek3Renderer
from trio_ollama.renderers.functiongemma import FunctionGemmaRenderer
from trio_ollama.renderers.gemma4 import Gemma4Renderer
from trio_ollama.renderers.glimmer import GlimmerRenderer
from trio_ollama.renderers.glm47 import GLM47Renderer
from trio_ollama.renderers.glmocr import GlmOcrRenderer
from trio_ollama.renderers.harmony import HarmonyRenderer
from trio_ollama.renderers.laguna import LagunaRenderer, PoolsideV1Renderer
from trio_ollama.renderers.lfm2 import LFM2Renderer
from trio_ollama.renderers.nemotron3nano import Nemotron3NanoRenderer
from trio_ollama.renderers.olmo3 import Olmo3Renderer
from trio_ollama.renderers.olmo3_think import Olmo3ThinkRenderer
from trio_ollama.renderers.qwen3vl import Qwen3VLRenderer
from trio_ollama.renderers.qwen35 import Qwen35Renderer
from trio_ollama.templates import Message, Think

__all__ = ["Renderer", "UnknownRenderer", "builtin_renderer"]

log = logging.getLogger(__name__)


class Renderer(Protocol):
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str: ...


class UnknownRenderer(LookupError):
    """A RENDERER no one knows: Ollama's error when a request renders with it."""


# By the name a Modelfile's RENDERER gives; each family's module adds its own.
_RENDERERS: dict[str, Callable[[], Renderer]] = {
    # gpt-oss's prompt. Ollama writes it with the model's own template and has no renderer
    # by this name; here it is one, for a gpt-oss model whose template is missing or broken.
    "harmony": HarmonyRenderer,
    "cogito": CogitoRenderer,
    "cohere": CohereRenderer,
    "deepseek3.1": DeepSeek3Renderer,
    "functiongemma": FunctionGemmaRenderer,
    "glm-4.7": GLM47Renderer,
    "glm-ocr": GlmOcrRenderer,
    "laguna": LagunaRenderer,
    "lfm2": lambda: LFM2Renderer(thinking=False),
    "lfm2-thinking": lambda: LFM2Renderer(thinking=True),
    "nemotron-3-nano": lambda: Nemotron3NanoRenderer(v35=False),
    "nemotron-3.5-nano": lambda: Nemotron3NanoRenderer(v35=True),
    "olmo3": lambda: Olmo3Renderer(extended_system=False),
    "olmo3-32b-think": lambda: Olmo3ThinkRenderer(variant_32b=True),
    "olmo3-think": lambda: Olmo3ThinkRenderer(variant_32b=False),
    "olmo3.1": lambda: Olmo3Renderer(extended_system=True),
    "poolside-v1": PoolsideV1Renderer,
    "qwen3-vl-instruct": lambda: Qwen3VLRenderer(thinking=False),
    "qwen3-vl-thinking": lambda: Qwen3VLRenderer(thinking=True),
    "qwen3.5": Qwen35Renderer,
    "gemma4": Gemma4Renderer,
    "gemma4-large": lambda: Gemma4Renderer(empty_block_on_nothink=True),
    "gemma4-small": Gemma4Renderer,
    "ornith": lambda: Qwen35Renderer(always_think_block=True),
    "glimmer": GlimmerRenderer,
    "qwen3.8": lambda: Qwen35Renderer(qwen38=True),
}

# Every name Ollama's `rendererForName` knows (HEAD).
_OLLAMA_NAMES = frozenset({
    "cogito", "cohere", "deepseek3.1", "functiongemma", "gemma4", "gemma4-large",
    "gemma4-small", "glimmer", "glm-4.7", "glm-ocr", "laguna", "lfm2", "lfm2-thinking",
    "nemotron-3-nano", "nemotron-3.5-nano", "olmo3", "olmo3-32b-think", "olmo3-think",
    "olmo3.1", "ornith", "poolside-v1", "qwen3-coder", "qwen3-vl-instruct", "qwen3-vl-thinking",
    "qwen3.5", "qwen3.8",
})  # fmt: skip


def builtin_renderer(name: str) -> Renderer | None:
    """The renderer Ollama selects for `name`. None where Ollama has one and this server not
    yet: the model's template renders the prompt, as for a model without a RENDERER. Raises
    `UnknownRenderer` for a name Ollama does not know either."""
    make = _RENDERERS.get(name)
    if make is not None:
        return make()
    if name in _OLLAMA_NAMES:
        log.debug("renderer %r is not built in here: the template renders the prompt", name)
        return None
    raise UnknownRenderer(f"unknown renderer {gojson.quote(name)}")
