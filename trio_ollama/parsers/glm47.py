"""GLM-4.7's output, as Ollama's built-in `glm-4.7` parser reads it: GLM-4.6's, but a prompt
that thinks (the default) ends with `<think>`, so the output starts inside the thinking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.parsers.glm46 import GLM46Parser
from trio_ollama.templates import thinks

__all__ = ["GLM47Parser"]


class GLM47Parser(GLM46Parser):
    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        super().init(tools, think)
        if think is None or thinks(think):
            self._state = "thinking"
