"""Ollama's `deepseek3.1` and `cogito` renderers: the exact prompt of each of Ollama's cases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.parser_cases import cases, ids, messages, think_of
from trio_ollama.renderers import builtin_renderer

DS = cases("renderers_deepseek3", "TestDeepSeekRenderer")
COGITO = cases("renderers_cogito", "TestCogitoRenderer")


@pytest.mark.parametrize("case", DS, ids=ids(DS))
def test_deepseek31_prompt_is_ollamas(case: dict[str, Any]) -> None:
    renderer = builtin_renderer("deepseek3.1")
    assert renderer is not None
    prompt = renderer.render(messages(case["messages"]), case.get("tools"),
                             think_of(case.get("thinkValue")))  # fmt: skip
    assert prompt == case["expected"]


@pytest.mark.parametrize("case", COGITO, ids=ids(COGITO))
def test_cogito_prompt_is_ollamas(case: dict[str, Any]) -> None:
    renderer = builtin_renderer("cogito")
    assert renderer is not None
    prompt = renderer.render(messages(case["messages"]), case.get("tools"),
                             think_of(case.get("thinkValue")))  # fmt: skip
    assert prompt == case["expected"]
