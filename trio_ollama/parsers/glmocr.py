"""GLM-OCR's output, as Ollama's built-in `glm-ocr` parser reads it: GLM-4.6's, without
thinking support (a `<think>` the model writes is still read as thinking, as in Ollama)."""

from __future__ import annotations

from trio_ollama.parsers.glm46 import GLM46Parser

__all__ = ["GlmOcrParser"]


class GlmOcrParser(GLM46Parser):
    has_thinking_support = False
