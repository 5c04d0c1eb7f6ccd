"""Glimmer and Qwen 3.8 end to end (issue 31): a model whose Modelfile names the family's PARSER
and RENDERER as Ollama's create does (`glimmer` and `glimmer`; `qwen3.5` and `qwen3.8`), served
by the real server (`trio-ollama serve`, loopback) whose runner writes a fixed script. The
official `ollama` and `openai` clients see the thinking, the call and the answer as Ollama sends
them, streamed and not; `_debug_render_only` shows the renderer's prompt, and a conversation the
renderer refuses is Ollama's 500 with its error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.server import ServerProcess
from tests.test_hostile_parsers import scripted_server
from tests.test_parsers_more_families_e2e import QUESTION, WEATHER
from trio_ollama.renderers import builtin_renderer
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model
from trio_ollama.templates import Message

pytestmark = pytest.mark.slow

GLIMMER_CALL = ('<atem:function_calls>\n<atem:invoke name="get_weather">\n'
                '<atem:parameter name="city">Paris</atem:parameter>\n</atem:invoke>\n'
                "</atem:function_calls>")  # fmt: skip

# Family -> (PARSER, RENDERER, the scripted output in tokens).
FAMILIES: dict[str, tuple[str, str, list[str]]] = {
    "glimmer": ("glimmer", "glimmer", [" to=self", "<|message|>", "Hmm", "<|eom|>", "<|start|>",
                "assistant", " to=user", "<|message|>", "Sure", ".", "<|eom|>", "<|start|>",
                "assistant", " to=get_weather", "<|message|>", GLIMMER_CALL[:45],
                GLIMMER_CALL[45:], "<|eot|>"]),
    "qwen3.8": ("qwen3.5", "qwen3.8", ["Hmm", "</think>", "\n\n", "Sure", ".", "<tool_call>",
                "\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n",
                "</tool_call>"]),
}  # fmt: skip
THINKING, CONTENT = "Hmm", "Sure."


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    parser, renderer, script = FAMILIES[request.param]
    models = tmp_path_factory.mktemp("models")
    store = Store(models)
    ensure_default_model(store)
    store.create(request.param,
                 CreateRequest(from_=DEFAULT_MODEL, parser=parser, renderer=renderer))  # fmt: skip
    server = scripted_server(models, script)
    try:
        yield request.param, server
    finally:
        server.stop()


def test_native_client_sees_thinking_call_and_content(family: tuple[str, ServerProcess]) -> None:
    name, server = family
    client = ollama.Client(host=server.url)
    reply = client.chat(model=name, messages=QUESTION, tools=[WEATHER], think=True)
    assert reply.message.content == CONTENT
    assert reply.message.thinking == THINKING
    calls = reply.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    chunks = list(client.chat(model=name, messages=QUESTION, tools=[WEATHER], think=True,
                              stream=True))  # fmt: skip
    assert "".join(c.message.content or "" for c in chunks) == CONTENT
    assert "".join(c.message.thinking or "" for c in chunks) == THINKING
    streamed = [t for c in chunks for t in c.message.tool_calls or []]
    assert [(t.function.name, dict(t.function.arguments)) for t in streamed] == [
        ("get_weather", {"city": "Paris"})
    ]
    # The answer streams in more than one piece; a chunk with a call carries it whole, and no
    # text.
    assert sum(1 for c in chunks if c.message.content) > 1
    assert all(not c.message.content for c in chunks if c.message.tool_calls)


def test_openai_client_sees_the_call(family: tuple[str, ServerProcess]) -> None:
    name, server = family
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    reply = client.chat.completions.create(model=name, messages=QUESTION,  # type: ignore[arg-type]
                                           tools=[WEATHER])  # type: ignore[list-item]  # fmt: skip
    message = reply.choices[0].message
    assert message.content == CONTENT
    assert getattr(message, "reasoning", None) == THINKING
    calls = message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city":"Paris"}')
    ]
    assert reply.choices[0].finish_reason == "tool_calls"
    stream = client.chat.completions.create(
        model=name,
        messages=QUESTION,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    assert isinstance(stream, openai.Stream)
    pieces = [c.choices[0].delta for c in stream if c.choices]
    assert "".join(d.content or "" for d in pieces) == CONTENT
    streamed = [t for d in pieces for t in d.tool_calls or []]
    assert [(t.function.name, t.function.arguments) for t in streamed] == [  # type: ignore[union-attr]
        ("get_weather", '{"city":"Paris"}')
    ]


@pytest.mark.parametrize("think", [None, False])
def test_the_runner_reads_the_renderers_prompt(
    family: tuple[str, ServerProcess], think: bool | None
) -> None:
    name, server = family
    body: dict[str, Any] = {"model": name, "messages": QUESTION, "tools": [WEATHER],
                            "stream": False, "_debug_render_only": True}  # fmt: skip
    if think is not None:
        body["think"] = think
    reply = httpx.post(server.url + "/api/chat", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    renderer = builtin_renderer(FAMILIES[name][1])
    assert renderer is not None
    # A model that thinks does so unless asked not to (Ollama's default): true, not unset.
    expected = renderer.render([Message.from_json(QUESTION[0])], [WEATHER],
                               True if think is None else think)  # fmt: skip
    assert reply.json()["_debug_info"]["rendered_template"] == expected
    marker = {"glimmer": "Reasoning strength: ", "qwen3.8": "<think>\n"}[name]
    assert marker in expected


# Glimmer's renderer refuses nothing.
@pytest.mark.parametrize("family", ["qwen3.8"], indirect=True)
def test_a_refused_conversation_is_ollamas_error(family: tuple[str, ServerProcess]) -> None:
    name, server = family
    body = {"model": name, "messages": [{"role": "system", "content": "Hello"}], "stream": False}
    reply = httpx.post(server.url + "/api/chat", json=body, timeout=60)
    assert reply.status_code == 500
    assert reply.json() == {"error": "no user query found in messages"}
