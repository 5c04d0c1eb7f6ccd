"""Issue 31's wt-j families and Gemma 4 end to end: a model whose Modelfile names the family's
PARSER and RENDERER, served by the real server (`trio-ollama serve`, loopback) whose runner
writes a fixed script; the official `ollama` and `openai` clients see the calls, thinking and
content as Ollama sends them, streamed and not, and `_debug_render_only` shows the renderer's
prompt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.server import ServerProcess
from tests.test_hostile_parsers import scripted_server
from trio_ollama.renderers import builtin_renderer
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model
from trio_ollama.templates import Message

pytestmark = pytest.mark.slow

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
           "parameters": {"type": "object", "required": ["city"],
                          "properties": {"city": {"type": "string"}}}}}  # fmt: skip
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]

# Family -> (PARSER and RENDERER name, the scripted output in tokens, thinking, content).
# Each family's script calls get_weather(city="Paris"), but olmo3-think's, whose parser reads
# no calls; ministral has no renderer in Ollama (its template writes the prompt) and, as
# Ollama's parser registry makes it, does not think.
FAMILIES: dict[str, tuple[str, list[str], str, str]] = {
    "qwen3.5": ("qwen3.5", ["Check", " it", "</think>", "\n\n", "Sure", ".", "<tool_call>",
                "\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n",
                "</tool_call>"], "Check it", "Sure."),
    "nemotron3nano": ("nemotron-3-nano", ["<think>", "Hmm", "</think>", "Sure", ".",
                      "<tool_call>", "<function=get_weather><parameter=city>Paris</parameter>",
                      "</function>", "</tool_call>"], "Hmm", "Sure."),
    "qwen3vl": ("qwen3-vl-thinking", ["Hmm", "</think>", "Sure", ".", "<tool_call>",
                '{"name": "get_weather", "arguments": {"city": "Paris"}}', "</tool_call>"],
                "Hmm", "Sure."),
    "lfm2": ("lfm2", ["Sure", ".", "<|tool_call_start|>", '[get_weather(city="Paris")]',
             "<|tool_call_end|>"], "", "Sure."),
    "olmo3": ("olmo3", ["Sure", ".", "<function_calls>", 'get_weather(city="Paris")',
              "</function_calls>"], "", "Sure."),
    "functiongemma": ("functiongemma", ["Sure", ".", "<start_function_call>",
                      "call:get_weather{city:<escape>Paris<escape>}", "<end_function_call>"],
                      "", "Sure."),
    "gemma4": ("gemma4", ["<|channel>", "thought\n", "Hmm", "<channel|>", "Sure", ".",
               "<|tool_call>", 'call:get_weather{city:<|"|>Paris<|"|>}', "<tool_call|>"],
               "Hmm", "Sure."),
    "ministral": ("ministral", ["Sure", ".", "[TOOL_CALLS]", "get_weather", "[ARGS]",
                  '{"city": "Paris"}'], "", "Sure."),
    "olmo3-think": ("olmo3-think", ["Hmm", "</think>", "Sure", "."], "Hmm", "Sure."),
}  # fmt: skip
NO_CALLS = {"olmo3-think"}
NO_RENDERER = {"ministral"}
CALL = [("get_weather", {"city": "Paris"})]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    name, script, _, _ = FAMILIES[request.param]
    models = tmp_path_factory.mktemp("models")
    store = Store(models)
    ensure_default_model(store)
    renderer = "" if request.param in NO_RENDERER else name
    store.create(name, CreateRequest(from_=DEFAULT_MODEL, parser=name, renderer=renderer))
    server = scripted_server(models, script)
    try:
        yield request.param, server
    finally:
        server.stop()


def test_native_client_sees_calls_thinking_and_content(family: tuple[str, ServerProcess]) -> None:
    key, server = family
    name, _, thinking, content = FAMILIES[key]
    client = ollama.Client(host=server.url)
    # A family that reads no calls offers no tools (Ollama refuses them: "does not support").
    tools, calls = ([], []) if key in NO_CALLS else ([WEATHER], CALL)
    reply = client.chat(model=name, messages=QUESTION, tools=tools, think=bool(thinking))
    assert reply.message.content == content
    assert (reply.message.thinking or "") == thinking
    got = reply.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in got] == calls
    chunks = list(client.chat(model=name, messages=QUESTION, tools=tools,
                              think=bool(thinking), stream=True))  # fmt: skip
    assert "".join(c.message.content or "" for c in chunks) == content
    assert "".join(c.message.thinking or "" for c in chunks) == thinking
    streamed = [t for c in chunks for t in c.message.tool_calls or []]
    assert [(t.function.name, dict(t.function.arguments)) for t in streamed] == calls
    # A chunk with a call carries it whole, and no text.
    assert all(not c.message.content for c in chunks if c.message.tool_calls)


def test_openai_client_sees_the_call(family: tuple[str, ServerProcess]) -> None:
    key, server = family
    name, _, _, content = FAMILIES[key]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    if key in NO_CALLS:
        reply = client.chat.completions.create(model=name, messages=QUESTION)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == content
        assert not reply.choices[0].message.tool_calls
        assert reply.choices[0].finish_reason == "stop"
        return
    reply = client.chat.completions.create(model=name, messages=QUESTION,  # type: ignore[arg-type]
                                           tools=[WEATHER])  # type: ignore[list-item]  # fmt: skip
    message = reply.choices[0].message
    assert message.content == content
    calls = message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city":"Paris"}')
    ]
    assert reply.choices[0].finish_reason == "tool_calls"


def test_the_runner_reads_the_renderers_prompt(family: tuple[str, ServerProcess]) -> None:
    key, server = family
    name, _, thinking, _ = FAMILIES[key]
    tools = [] if key in NO_CALLS else [WEATHER]
    body: dict[str, Any] = {"model": name, "messages": QUESTION, "tools": tools,
                            "stream": False, "_debug_render_only": True}  # fmt: skip
    reply = httpx.post(server.url + "/api/chat", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    rendered = reply.json()["_debug_info"]["rendered_template"]
    if key in NO_RENDERER:
        # The default model's ChatML template writes it (it shows no tools).
        assert rendered == "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
        return
    renderer = builtin_renderer(name)
    assert renderer is not None
    # A model that thinks does so unless asked not to (Ollama's default): the prompt says so.
    think = True if thinking else None
    expected = renderer.render([Message.from_json(QUESTION[0])], tools, think)
    assert rendered == expected
