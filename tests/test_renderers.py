"""A model's RENDERER writes its prompt in place of its template (the registry is
`trio_ollama.renderers`; each family's own tests are in their modules)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from trio_ollama import renderers
from trio_ollama.prompt import ModelPrompt, PromptError
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


def test_a_renderer_ollama_has_and_this_server_not_yet_leaves_the_template_to_render() -> None:
    assert "qwen3-coder" not in renderers._RENDERERS
    assert renderers.builtin_renderer("qwen3-coder") is None
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="qwen3-coder")  # fmt: skip
    assert model.render([Message(role="user", content="hi")]) == "hi"


def test_a_renderer_no_one_knows_fails_the_request_as_in_ollama() -> None:
    # Ollama stores any RENDERER at create; rendering with an unknown one is a 500.
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="no-such-renderer")  # fmt: skip
    with pytest.raises(PromptError) as caught:
        model.render([Message(role="user", content="hi")])
    assert str(caught.value) == 'unknown renderer "no-such-renderer"'
    assert not caught.value.invalid  # the model's fault: 500


def test_a_requests_own_template_is_used_rather_than_the_renderer(echo: None) -> None:
    # Ollama's generate renders a request's `template` the legacy way, never the renderer.
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="echo-test", from_request=True)  # fmt: skip
    assert model.render([Message(role="user", content="hi")]) == "hi"
