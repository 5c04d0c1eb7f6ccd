"""gpt-oss's harmony format end to end: the default model made with `PARSER harmony` and
`RENDERER harmony`, a real `trio-ollama serve` whose runners write scripted harmony output
(`scripted_server`), and the official `ollama` and `openai` clients reading the thinking, the
answer and the call as Ollama sends them, streamed and not. The prompt the runner read is the
renderer's: the fake runner's tokens are the prompt's bytes, so generate's `context` spells
it, and a chat's `prompt_eval_count` is its length."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.test_hostile_parsers import scripted_server
from trio_ollama.parsers.harmony import FunctionNames
from trio_ollama.renderers.harmony import HarmonyRenderer
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model
from trio_ollama.templates import Message

pytestmark = pytest.mark.slow

MODEL = "smollm2-harmony"
# A name harmony cannot write: the prompt calls it get_weather, the client sees its own.
WEATHER = {"type": "function", "function": {
    "name": "get-weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}}}}}  # fmt: skip
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]

# One piece a token, after the prompt's `<|start|>assistant`.
ANSWER = [
    "<|channel|>analysis<|message|>", "The user ", "greets me.", "<|end|>",
    "<|start|>assistant<|channel|>final<|message|>", "Hello", " there!", "<|end|>",
]  # fmt: skip
CALL = ["<|channel|>analysis<|message|>", "Need the ", "weather.", "<|end|>",
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json",
        "<|message|>", '{"city":', ' "Paris"}']  # fmt: skip


def served(models: Path, script: list[str]) -> Iterator[str]:
    server = scripted_server(models, script)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Path:
    folder = tmp_path_factory.mktemp("harmony") / "models"
    store = Store(folder)
    ensure_default_model(store)
    store.create(MODEL, CreateRequest(from_=DEFAULT_MODEL, parser="harmony", renderer="harmony"))
    return folder


@pytest.fixture(scope="module")
def answering(models: Path) -> Iterator[str]:
    yield from served(models, ANSWER)


@pytest.fixture(scope="module")
def calling(models: Path) -> Iterator[str]:
    yield from served(models, CALL)


def prompt_of(messages: list[dict[str, Any]], tools: list[Any] | None, think: Any) -> str:
    """The renderer's prompt, with the tools named as the harmony parser names them."""
    renamed = FunctionNames().renamed(tools) if tools else tools
    msgs = [Message.from_json(m) for m in messages]
    return HarmonyRenderer().render(msgs, renamed, think)


# ----- the prompt


def test_the_runner_reads_the_renderers_prompt(answering: str) -> None:
    # Generate: the context is the prompt's bytes and the output's (the fake's tokens).
    reply = httpx.post(answering + "/api/generate", timeout=120, json={
        "model": MODEL, "prompt": "Hi", "stream": False, "think": "low"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    prompt = prompt_of([{"role": "user", "content": "Hi"}], None, "low")
    assert bytes(body["context"]).decode() == prompt + "".join(ANSWER)
    assert (body["thinking"], body["response"]) == ("The user greets me.", "Hello there!")
    # Chat: what the debug render shows is what the runner read (its length, in tokens).
    chat = {"model": MODEL, "messages": QUESTION, "tools": [WEATHER], "think": "max"}
    shown = httpx.post(answering + "/api/chat", timeout=120,
                       json={**chat, "_debug_render_only": True}).json()  # fmt: skip
    # "max" asks harmony for "high"? Only for a gpt-oss model; this one asked by name.
    rendered = prompt_of(QUESTION, [WEATHER], "max")
    assert shown["_debug_info"]["rendered_template"] == rendered
    assert "type get_weather = (_: {" in rendered and "Reasoning: max" in rendered
    ran = httpx.post(answering + "/api/chat", timeout=120, json={**chat, "stream": False}).json()
    assert ran["prompt_eval_count"] == len(rendered.encode())


# ----- thinking and the answer


def test_ollama_client_reads_thinking_and_answer(answering: str) -> None:
    client = ollama.Client(host=answering)
    reply = client.chat(model=MODEL, messages=QUESTION, think=True)
    assert reply.message.thinking == "The user greets me."
    assert reply.message.content == "Hello there!"
    assert not reply.message.tool_calls
    chunks = list(client.chat(model=MODEL, messages=QUESTION, stream=True))
    # The text streams as it comes: the thinking in two pieces, then the answer in two.
    assert [(c.message.thinking or "", c.message.content) for c in chunks[:-1]] == [
        ("The user ", ""), ("greets me.", ""), ("", "Hello"), ("", " there!")]  # fmt: skip
    assert chunks[-1].done and chunks[-1].message.content == ""


def test_openai_client_reads_reasoning_and_answer(answering: str) -> None:
    client = openai.OpenAI(base_url=answering + "/v1", api_key="ollama")
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                           reasoning_effort="high")  # fmt: skip
    message = reply.choices[0].message
    assert message.content == "Hello there!"
    assert (message.model_extra or {}).get("reasoning") == "The user greets me."
    assert reply.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                            stream=True)  # fmt: skip
    reasoning = content = ""
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += (delta.model_extra or {}).get("reasoning") or ""
            content += delta.content or ""
    assert (reasoning, content) == ("The user greets me.", "Hello there!")


# ----- a call


def test_ollama_client_reads_the_call_by_its_own_name(calling: str) -> None:
    client = ollama.Client(host=calling)
    reply = client.chat(model=MODEL, messages=QUESTION, tools=[WEATHER])
    assert reply.message.thinking == "Need the weather."
    assert reply.message.content == ""
    calls = reply.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get-weather", {"city": "Paris"})]  # fmt: skip
    chunks = list(client.chat(model=MODEL, messages=QUESTION, tools=[WEATHER], stream=True))
    with_calls = [c for c in chunks if c.message.tool_calls]
    # The call goes out whole when the output ends (harmony's call is the last thing written):
    # here in the chunk just before the closing one, which Ollama's would carry it in.
    assert len(with_calls) == 1 and with_calls[0] is chunks[-2] and chunks[-1].done
    assert "".join(c.message.thinking or "" for c in chunks) == "Need the weather."


def test_openai_client_reads_the_call(calling: str) -> None:
    client = openai.OpenAI(base_url=calling + "/v1", api_key="ollama")
    reply = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[WEATHER],  # type: ignore[arg-type, list-item]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get-weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    stream = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[WEATHER],
        stream=True,  # type: ignore[arg-type, list-item]
    )
    deltas = [c.choices[0] for c in stream if c.choices]
    calls = [d.delta.tool_calls for d in deltas if d.delta.tool_calls]
    assert len(calls) == 1 and calls[0][0].function is not None
    assert calls[0][0].function.name == "get-weather"
    assert deltas[-1].finish_reason == "tool_calls"


def test_the_date_is_todays(answering: str) -> None:
    shown = httpx.post(answering + "/api/chat", timeout=120, json={
        "model": MODEL, "messages": QUESTION, "_debug_render_only": True}).json()  # fmt: skip
    today = datetime.date.today().isoformat()
    assert f"Current date: {today}\n" in shown["_debug_info"]["rendered_template"]
