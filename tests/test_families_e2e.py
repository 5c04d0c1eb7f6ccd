"""End to end for the family parsers and renderers of issue 31 (wt-i's: DeepSeek 3.1, Cogito,
GLM, Cohere, Laguna): a model made with `PARSER <name>` and `RENDERER <name>` on the default
model, served by the real `trio-ollama serve` whose runner answers a fixed script (the family's
markup, one piece a token). The official `ollama` and `openai` clients see the thinking, the
answer and the calls as Ollama sends them, streamed and not; the prompt the server renders
(`_debug_render_only`, and the length the runner reports reading) is the renderer's."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.server import ServerProcess
from tests.templates_with_tools import WEATHER_TOOL
from tests.test_hostile_parsers import scripted_server
from trio_ollama.renderers import builtin_renderer
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model
from trio_ollama.templates import Message

pytestmark = pytest.mark.slow

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
]


@dataclass(frozen=True)
class Family:
    parser: str
    renderer: str
    script: Sequence[str]
    think: bool
    thinking: str
    content: str
    calls: Sequence[tuple[str, Mapping[str, Any]]]
    tools: Sequence[Mapping[str, Any]] = field(default_factory=lambda: [WEATHER_TOOL])


FAMILIES = {
    "deepseek3": Family(
        parser="deepseek3",
        renderer="deepseek3.1",
        script=["Let me ", "think.", "</think>", "Checking", " the weather.",
                "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "get_weather", "<｜tool▁sep｜>",
                '{"city": ', '"Paris"}', "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>"],
        think=True,
        thinking="Let me think.",
        content="Checking the weather.",
        calls=[("get_weather", {"city": "Paris"})],
    ),
    # Offered tools, Cogito does not think, whatever the request says.
    "cogito": Family(
        parser="cogito",
        renderer="cogito",
        script=["Sure", ".", "<｜tool▁calls▁begin｜>",
                "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n",
                '{"city":', '"Paris"}', "\n```<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>"],
        think=True,
        thinking="",
        content="Sure.",
        calls=[("get_weather", {"city": "Paris"})],
    ),
    "glm-4.7": Family(
        parser="glm-4.7",
        renderer="glm-4.7",
        script=["Plan", " it.", "</think>", "Checking", ".", "<tool_call>", "get_weather",
                "<arg_key>city</arg_key>", "<arg_value>Paris</arg_value>", "</tool_call>"],
        think=True,
        thinking="Plan it.",
        content="Checking.",
        calls=[("get_weather", {"city": "Paris"})],
    ),
    "glm-ocr": Family(
        parser="glm-ocr",
        renderer="glm-ocr",
        script=["Reading", ".", "<tool_call>get_weather<arg_key>city</arg_key>",
                "<arg_value>Oslo</arg_value></tool_call>"],
        think=False,
        thinking="",
        content="Reading.",
        calls=[("get_weather", {"city": "Oslo"})],
    ),
    "cohere": Family(
        parser="cohere",
        renderer="cohere",
        script=["Let me ", "think.", "<|END_THINKING|>", "<|START_TEXT|>", "Checking",
                " the weather.", "<|END_TEXT|>", "<|START_ACTION|>", "[\n",
                '{"tool_call_id": "0", "tool_name": "get_weather", ',
                '"parameters": {"city": "Paris"}}', "\n]", "<|END_ACTION|>"],
        think=True,
        thinking="Let me think.",
        content="Checking the weather.",
        calls=[("get_weather", {"city": "Paris"})],
    ),
    "laguna": Family(
        parser="laguna",
        renderer="laguna",
        script=["\n", "Plan", " it.", "\n", "</think>", "\n", "Checking", ".", "\n",
                "<tool_call>", "get_weather", "\n", "<arg_key>", "city", "</arg_key>", "\n",
                "<arg_value>", "Paris", "</arg_value>", "\n", "</tool_call>"],
        think=True,
        thinking="Plan it.",
        content="Checking.",
        calls=[("get_weather", {"city": "Paris"})],
    ),
    # Not asked to think, it thinks all the same: unseen.
    "poolside-v1": Family(
        parser="poolside-v1",
        renderer="poolside-v1",
        script=["<think>", "Hidden.", "</think>", "Sure", ".", "<tool_call>get_weather",
                "<arg_key>city</arg_key>", "<arg_value>Oslo</arg_value>", "</tool_call>"],
        think=False,
        thinking="",
        content="Sure.",
        calls=[("get_weather", {"city": "Oslo"})],
    ),
}  # fmt: skip


@dataclass
class Served:
    family: Family
    model: str
    server: ServerProcess


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           default_gguf: Path) -> Iterator[Served]:  # fmt: skip
    family = FAMILIES[request.param]
    models = tmp_path_factory.mktemp(request.param) / "models"
    store = Store(models)
    ensure_default_model(store)
    model = f"family-{request.param}"
    store.create(model, CreateRequest(from_=DEFAULT_MODEL, parser=family.parser,
                                      renderer=family.renderer))  # fmt: skip
    server = scripted_server(models, list(family.script))
    try:
        yield Served(family, model, server)
    finally:
        server.stop()


def native_calls(calls: Sequence[Any] | None) -> list[tuple[str, dict[str, Any]]]:
    return [(c.function.name, dict(c.function.arguments)) for c in calls or ()]


def test_ollama_client_sees_what_ollama_sends(served: Served) -> None:
    family, client = served.family, ollama.Client(host=served.server.url)
    reply = client.chat(served.model, messages=MESSAGES, tools=family.tools, think=family.think)
    assert (reply.message.thinking or "") == family.thinking
    assert reply.message.content == family.content
    assert native_calls(reply.message.tool_calls) == list(family.calls)

    chunks = list(client.chat(served.model, messages=MESSAGES, tools=family.tools,
                              think=family.think, stream=True))  # fmt: skip
    assert "".join(c.message.thinking or "" for c in chunks) == family.thinking
    assert "".join(c.message.content for c in chunks) == family.content
    calls = [call for c in chunks for call in c.message.tool_calls or ()]
    assert native_calls(calls) == list(family.calls)
    # A call goes out whole, in a chunk of its own after the text before it.
    with_calls = [i for i, c in enumerate(chunks) if c.message.tool_calls]
    assert all(not chunks[i].message.content for i in with_calls)
    texts = [i for i, c in enumerate(chunks) if c.message.content]
    if family.calls and texts:
        assert max(texts) < min(with_calls)
    assert chunks[-1].done


def test_openai_client_sees_what_ollama_sends(served: Served) -> None:
    family = served.family
    client = openai.OpenAI(base_url=served.server.url + "/v1", api_key="unused")
    effort: Any = "high" if family.think else "none"
    reply = client.chat.completions.create(model=served.model, messages=MESSAGES,  # type: ignore[arg-type]
                                           tools=family.tools, reasoning_effort=effort)  # type: ignore[arg-type]  # fmt: skip
    message = reply.choices[0].message
    assert (message.content or "") == family.content
    assert ((message.model_extra or {}).get("reasoning") or "") == family.thinking
    got = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()]  # type: ignore[union-attr]
    assert got == list(family.calls)
    assert reply.choices[0].finish_reason == ("tool_calls" if family.calls else "stop")

    stream = client.chat.completions.create(model=served.model, messages=MESSAGES,  # type: ignore[arg-type]
                                            tools=family.tools, reasoning_effort=effort,  # type: ignore[arg-type]
                                            stream=True)  # fmt: skip
    content, reasoning, calls = "", "", []
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += (delta.model_extra or {}).get("reasoning") or ""
        calls += [(c.function.name, json.loads(c.function.arguments or "{}"))  # type: ignore[union-attr]
                  for c in delta.tool_calls or ()]  # fmt: skip
    assert (content, reasoning, calls) == (family.content, family.thinking, list(family.calls))


def test_the_prompt_is_the_renderers(served: Served) -> None:
    family = served.family
    renderer = builtin_renderer(family.renderer)
    assert renderer is not None
    expected = renderer.render([Message.from_json(m) for m in MESSAGES], family.tools,
                               family.think)  # fmt: skip
    body = {"model": served.model, "messages": MESSAGES, "tools": family.tools,
            "think": family.think, "_debug_render_only": True}  # fmt: skip
    reply = httpx.post(served.server.url + "/api/chat", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["_debug_info"]["rendered_template"] == expected
    # What the runner read: the fake engine counts a prompt's characters.
    body = {k: v for k, v in body.items() if k != "_debug_render_only"} | {"stream": False}
    reply = httpx.post(served.server.url + "/api/chat", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["prompt_eval_count"] == len(expected)
