"""Ollama's `glm-4.7` and `glm-ocr` renderers: the exact prompt of each of Ollama's cases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.parser_cases import cases, ids, think_of
from trio_ollama.renderers import builtin_renderer
from trio_ollama.templates import Message

GLM47 = cases("renderers_glm47", "TestGLM47Renderer")
# Ollama's server has its renderers mark images (`RenderImgTags`); its cases without are for
# other users of the package, not this server's.
OCR = [c for c in cases("renderers_glmocr", "TestGlmOcrRenderer_Images")
       if c["renderer"].get("useImgTags")]  # fmt: skip


def messages(data: list[dict[str, Any]]) -> list[Message]:
    """The tables' messages; an image is its bytes (Ollama's `api.ImageData`)."""
    out = []
    for m in data:
        images = [i["__image__"].encode() for i in m.get("images") or ()]
        out.append(Message.from_json({**m, "images": images}))
    return out


@pytest.mark.parametrize("case", GLM47, ids=ids(GLM47))
def test_glm47_prompt_is_ollamas(case: dict[str, Any]) -> None:
    renderer = builtin_renderer("glm-4.7")
    assert renderer is not None
    prompt = renderer.render(messages(case["messages"]), case.get("tools"),
                             think_of(case.get("thinkValue")))  # fmt: skip
    assert prompt == case["expected"]


@pytest.mark.parametrize("case", OCR, ids=ids(OCR))
def test_glm_ocr_prompt_is_ollamas(case: dict[str, Any]) -> None:
    renderer = builtin_renderer("glm-ocr")
    assert renderer is not None
    assert renderer.render(messages(case["messages"]), None, None) == case["expected"]


def test_glm47_arguments_keep_the_calls_order() -> None:
    """Ollama's arguments are an ordered map: a call's arguments render in the order it gave
    them (maps within them sorted, as Go marshals a map)."""
    renderer = builtin_renderer("glm-4.7")
    assert renderer is not None
    call = {"function": {"name": "f", "arguments": {"b": {"z": 1, "y": 2}, "a": "x"}}}
    prompt = renderer.render(messages([{"role": "assistant", "tool_calls": [call]}]), None, None)
    assert ('<tool_call>f<arg_key>b</arg_key><arg_value>{"y":2,"z":1}</arg_value>'
            "<arg_key>a</arg_key><arg_value>x</arg_value></tool_call>") in prompt  # fmt: skip
