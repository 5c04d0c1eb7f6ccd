"""End to end on the real model: a Modelfile whose template has a tool-call section, a JSON
schema `format` that forces SmolLM2's answer into that call's shape, and the official `ollama`
and `openai` clients receiving the parsed call from the real server (subprocess, loopback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import httpx
import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from tests.server import ServerProcess
from tests.templates_with_tools import CHATML_JSON_CALLS

pytestmark = pytest.mark.slow

MODELFILE = f'''FROM smollm2:135m
TEMPLATE """{CHATML_JSON_CALLS}"""
PARAMETER temperature 0
'''

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
        },
    },
}
# The call's shape, as the template writes it: the grammar leaves the model no other answer.
CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": ["get_weather"]},
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
            "required": ["city"],
        },
    },
    "required": ["name", "parameters"],
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL_ID = re.compile(r"call_[a-z0-9]{8}")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, real_server: ServerProcess) -> str:
    folder = tmp_path_factory.mktemp("modelfile")
    (folder / "Modelfile").write_text(MODELFILE)
    env = {**os.environ, "OLLAMA_HOST": real_server.url.removeprefix("http://")}
    created = subprocess.run(
        [sys.executable, "-m", "trio_ollama", "create", "caller", "-f", "Modelfile"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return real_server.url


def test_the_model_can_call_tools(url: str) -> None:
    shown = ollama.Client(host=url).show("caller")
    assert shown.capabilities == ["completion", "tools"]


def test_ollama_client_receives_the_call(url: str) -> None:
    client = ollama.Client(host=url)
    reply = client.chat(model="caller", messages=QUESTION, tools=[WEATHER], format=CALL_SCHEMA,
                        options={"num_predict": 40})  # fmt: skip
    calls = reply.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments in ({"city": "Paris"}, {"city": "Oslo"})
    assert reply.message.content == ""
    # Streamed: the call arrives once, in a chunk of its own, with Ollama's id and index.
    raw = [
        chunk.model_dump()
        for chunk in client.chat(
            model="caller", messages=QUESTION, tools=[WEATHER], format=CALL_SCHEMA, stream=True
        )
    ]
    with_calls = [c["message"] for c in raw if c["message"].get("tool_calls")]
    assert len(with_calls) == 1 and with_calls[0]["content"] == ""
    assert with_calls[0]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_native_call_shape(url: str) -> None:
    body = {"model": "caller", "messages": QUESTION, "tools": [WEATHER], "format": CALL_SCHEMA,
            "stream": False}  # fmt: skip
    message = httpx.post(url + "/api/chat", json=body, timeout=120).json()["message"]
    [call] = message["tool_calls"]
    assert CALL_ID.fullmatch(call["id"])
    assert list(call["function"]) == ["index", "name", "arguments"]
    assert call["function"]["index"] == 0


def test_openai_client_receives_the_call(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    # The client's TypedDicts, from plain JSON: the wire format is the point here.
    args: Any = {
        "model": "caller",
        "messages": QUESTION,
        "tools": [WEATHER],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "call", "schema": CALL_SCHEMA},
        },
        "max_tokens": 40,
    }
    reply = client.chat.completions.create(**args)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert CALL_ID.fullmatch(call.id)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) in ({"city": "Paris"}, {"city": "Oslo"})
    chunks = list(client.chat.completions.create(**args, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    streamed = [call for d in deltas for call in d.tool_calls or ()]
    assert len(streamed) == 1 and streamed[0].function is not None
    assert streamed[0].function.name == "get_weather"
    assert streamed[0].id is not None and CALL_ID.fullmatch(streamed[0].id)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_logprobs_as_ollamas_integration_tests_ask(url: str) -> None:
    """Ollama's `api_test.go` (generate, not streamed, with and without top 5) and
    `basic_test.go` (streamed: one entry per token for num_predict 10)."""
    client = ollama.Client(host=url)
    options = {"temperature": 0, "seed": 123, "num_predict": 10}
    assert not client.generate(model="smollm2:135m", prompt="Why is the sky blue?",
                               options=options).logprobs  # fmt: skip
    for top in (0, 5):
        reply = client.generate(model="smollm2:135m", prompt="Why is the sky blue?",
                                options=options, logprobs=True, top_logprobs=top)  # fmt: skip
        assert reply.logprobs
        for entry in reply.logprobs:
            assert entry.token and entry.logprob <= 0
            tops = entry.top_logprobs or []
            assert (len(tops) > 0) == (top > 0) and len(tops) <= top
            assert [t.logprob for t in tops] == sorted((t.logprob for t in tops), reverse=True)
    # The `bytes` the Python client does not model: each token's own, as Go's test checks.
    body = {"model": "smollm2:135m", "prompt": "Why is the sky blue?", "options": options,
            "logprobs": True, "top_logprobs": 5, "stream": False}  # fmt: skip
    for entry in httpx.post(url + "/api/generate", json=body, timeout=120).json()["logprobs"]:
        for e in [entry, *entry["top_logprobs"]]:
            assert e["bytes"] == list(e["token"].encode())
    # basic_test.go's runNumPredict: streamed, one entry per token, num_predict of them.
    count = 0
    final = None
    stream = client.generate(model="smollm2:135m", prompt="Write a long story.", options=options,
                             logprobs=True, stream=True)  # fmt: skip
    for chunk in stream:
        count += len(chunk.logprobs or ())
        final = chunk
    assert final is not None and final.eval_count == count == 10
