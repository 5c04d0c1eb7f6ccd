"""A model's RENDERER writes its prompt in place of its template (the registry is
`trio_ollama.renderers`; each family's own tests are in their modules)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from trio_ollama import renderers
from trio_ollama.prompt import ModelPrompt
from trio_ollama.templates import Message


class _Echo:
    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        think: bool | str | None,
    ) -> str:
        return f"{[m.content for m in messages]} tools={len(tools or ())} think={think!r}"


@pytest.fixture
def echo() -> Iterator[None]:
    renderers._RENDERERS["echo-test"] = _Echo
    try:
        yield
    finally:
        del renderers._RENDERERS["echo-test"]


def test_a_named_renderer_writes_the_prompt_instead_of_the_template(echo: None) -> None:
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="echo-test")  # fmt: skip
    msgs = [Message(role="user", content="hi")]
    prompt = model.render(msgs, tools=[{"type": "function"}], think="high")
    assert prompt == "['hi'] tools=1 think='high'"


def test_an_unknown_renderer_leaves_the_template_to_render() -> None:
    assert renderers.builtin_renderer("no-such-renderer") is None
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="no-such-renderer")  # fmt: skip
    assert model.render([Message(role="user", content="hi")]) == "hi"
