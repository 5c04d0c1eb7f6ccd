"""Olmo 3 Think's prompt, as Ollama's `olmo3-think` and `olmo3-32b-think` renderers write it:
ChatML without tools or tool turns, and `<think>` opened for the answer."""

from __future__ import annotations

from collections.abc import Sequence

from trio_ollama.renderers.common import Tools
from trio_ollama.renderers.olmo3 import DEFAULT_SYSTEM_31, NO_FUNCTIONS
from trio_ollama.templates import Message, Think

__all__ = ["Olmo3ThinkRenderer"]

# Olmo 3's texts, without the space Olmo 3 leaves for what follows them.
FUNCTIONS_SUFFIX = f" {NO_FUNCTIONS}<functions></functions>"
SYSTEM_32B = "You are a helpful AI assistant."
SYSTEM_31 = DEFAULT_SYSTEM_31.rstrip()


class Olmo3ThinkRenderer:
    def __init__(self, *, variant_32b: bool) -> None:
        self._default = SYSTEM_32B if variant_32b else SYSTEM_31

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        systems = [m for m in messages if m.role == "system"]
        system = systems[0].content + FUNCTIONS_SUFFIX if systems else self._default
        out = [f"<|im_start|>system\n{system}<|im_end|>\n"]
        for message in messages:
            if message.role in ("user", "assistant"):
                out.append(f"<|im_start|>{message.role}\n{message.content}<|im_end|>\n")
        out.append("<|im_start|>assistant\n<think>")
        return "".join(out)
