"""Tool calls and thinking through the HTTP API: the real app, service and scheduler over the
fake engine, whose scripted output stands for what a model of each family writes. Native
`/api/chat` and `/api/generate`, and the OpenAI layer over them, streaming and not."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import pytest

from tests.inprocess import Server, ndjson, post
from tests.templates_with_tools import DEEPSEEK_R1, LLAMA32, MISTRAL, QWEN, TIME_TOOL, WEATHER_TOOL
from trio_ollama.runner.fake import FakeConfig

CALL_ID = re.compile(r"call_[a-z0-9]{8}")
USER = [{"role": "user", "content": "Weather in Oslo?"}]

QWEN_CALL = [
    "<think>", "\n", "The user", " wants weather.", "</think>", "\n\n",
    "<tool_call>", "\n", '{"name": "get_weather", ', '"arguments": {"city": ', '"Oslo"}}',
    "\n", "</tool_call>",
]  # fmt: skip


async def model(server: Server, name: str, template: str, script: list[str]) -> str:
    """A model of the tiny GGUF with `template`, whose runner will answer `script` (models of
    one GGUF share a runner: a test scripts one answer)."""
    r = await post(server, "/api/create", {"model": name, "from": "tiny", "template": template,
                                           "stream": False})  # fmt: skip
    assert r.status_code == 200, await r.get_data()
    server.engines.config = FakeConfig(script=tuple(script))
    return name


def sse(text: str) -> list[dict[str, Any]]:
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


async def test_native_chat_streams_thinking_then_one_call(server: Server) -> None:
    name = await model(server, "qwen", QWEN, QWEN_CALL)
    r = await post(server, "/api/chat", {"model": name, "messages": USER, "tools": [WEATHER_TOOL]})
    chunks = await ndjson(r)
    messages = [c["message"] for c in chunks]
    assert "".join(m.get("thinking", "") for m in messages) == "The user wants weather."
    assert "".join(m["content"] for m in messages) == ""
    [with_calls] = [m for m in messages if "tool_calls" in m]
    assert list(with_calls) == ["role", "content", "tool_calls"]  # Ollama's field order
    assert with_calls["content"] == ""
    [call] = with_calls["tool_calls"]
    assert CALL_ID.fullmatch(call["id"])
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}
    final = chunks[-1]
    assert final["done"] and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}


async def test_native_chat_without_streaming_gathers_calls(server: Server) -> None:
    script = ["Checking both.\n", *QWEN_CALL[6:], "\n<tool_call>\n",
              '{"name": "get_time", "arguments": {}}', "\n</tool_call>"]  # fmt: skip
    name = await model(server, "qwen", QWEN, script)
    body = {"model": name, "messages": USER, "tools": [WEATHER_TOOL, TIME_TOOL], "stream": False,
            "think": False}  # fmt: skip
    reply = await (await post(server, "/api/chat", body)).get_json()
    message = reply["message"]
    assert message["content"] == "Checking both.\n" and "thinking" not in message
    assert [c["function"] for c in message["tool_calls"]] == [
        {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"index": 1, "name": "get_time", "arguments": {}},
    ]
    assert len({c["id"] for c in message["tool_calls"]}) == 2


async def test_think_false_leaves_the_text_alone_and_tells_the_template(server: Server) -> None:
    name = await model(server, "qwen", QWEN, ["<think>", "hm", "</think>", "Hi"])
    body = {"model": name, "messages": USER, "think": False, "stream": False}
    reply = await (await post(server, "/api/chat", body)).get_json()
    assert reply["message"] == {"role": "assistant", "content": "<think>hm</think>Hi"}
    rendered = await (
        await post(server, "/api/chat", {**body, "_debug_render_only": True})
    ).get_json()
    assert rendered["_debug_info"]["rendered_template"].endswith("<think>\n\n</think>\n\n")


async def test_llama_bare_json_call_and_plain_answers(server: Server) -> None:
    call = '{"name": "get_weather", "parameters": {"city": "Oslo"}}'
    name = await model(server, "llama", LLAMA32, [call[:10], call[10:30], call[30:]])
    body = {"model": name, "messages": USER, "tools": [WEATHER_TOOL], "stream": False}
    reply = await (await post(server, "/api/chat", body)).get_json()
    assert reply["message"]["content"] == ""
    assert reply["message"]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


async def test_an_answer_that_is_no_call_streams_as_text(server: Server) -> None:
    """With a bare `{` tag, an answer that does not open with `{` is text from its first piece."""
    name = await model(server, "llama", LLAMA32, ["It is ", "sunny {", "}"])
    body = {"model": name, "messages": USER, "tools": [WEATHER_TOOL]}
    chunks = await ndjson(await post(server, "/api/chat", body))
    assert [c["message"]["content"] for c in chunks] == ["It is ", "sunny {", "}", ""]


async def test_mistral_calls(server: Server) -> None:
    name = await model(server, "mistral", MISTRAL, [
        "[TOOL_CALLS] [", '{"name": "get_time", "arguments": {}}', "]"])  # fmt: skip
    body = {"model": name, "messages": USER, "tools": [TIME_TOOL], "stream": False}
    reply = await (await post(server, "/api/chat", body)).get_json()
    assert reply["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    assert reply["message"]["content"] == ""


async def test_generate_splits_thinking(server: Server) -> None:
    name = await model(server, "r1", DEEPSEEK_R1, ["<think>", "2+2", " is 4", "</think>", "4"])
    chunks = await ndjson(await post(server, "/api/generate", {"model": name, "prompt": "2+2?"}))
    assert "".join(c.get("thinking", "") for c in chunks) == "2+2 is 4"
    assert "".join(c["response"] for c in chunks) == "4"
    reply = await (await post(server, "/api/generate", {"model": name, "prompt": "2+2?",
                                                         "stream": False})).get_json()  # fmt: skip
    assert list(reply)[:5] == ["model", "created_at", "response", "thinking", "done"]
    assert (reply["response"], reply["thinking"]) == ("4", "2+2 is 4")


async def test_raw_generate_still_splits_thinking_by_the_templates_tags(server: Server) -> None:
    """Ollama skips only the built-in parser for a raw prompt: the template's thinking tags
    still split the answer."""
    name = await model(server, "r1raw", DEEPSEEK_R1, ["<think>", "hm", "</think>", "4"])
    body = {"model": name, "prompt": "2+2?", "raw": True, "stream": False}
    reply = await (await post(server, "/api/generate", body)).get_json()
    assert (reply["response"], reply["thinking"]) == ("4", "hm")


async def test_capabilities_and_their_refusals(server: Server) -> None:
    await model(server, "qwen", QWEN, ["x"])
    await model(server, "r1", DEEPSEEK_R1, ["x"])
    caps = {}
    for name in ("tiny", "qwen", "r1"):
        caps[name] = (await (await post(server, "/api/show", {"model": name})).get_json())[
            "capabilities"]  # fmt: skip
    assert caps == {"tiny": ["completion"], "qwen": ["completion", "tools", "thinking"],
                    "r1": ["completion", "thinking"]}  # fmt: skip
    for think in (True, "high"):
        r = await post(server, "/api/chat", {"model": "tiny", "messages": USER, "think": think})
        assert r.status_code == 400
        assert await r.get_json() == {"error": '"tiny" does not support thinking'}
    r = await post(server, "/api/chat", {"model": "r1", "messages": USER, "tools": [TIME_TOOL]})
    assert r.status_code == 400
    assert await r.get_json() == {
        "error": "registry.ollama.ai/library/r1:latest does not support tools"
    }


# ----- the OpenAI layer over the same parsing


async def test_openai_chat_tool_calls(server: Server) -> None:
    name = await model(server, "qwen", QWEN, QWEN_CALL)
    body = {"model": name, "messages": USER, "tools": [WEATHER_TOOL]}
    reply = await (await post(server, "/v1/chat/completions", body)).get_json()
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["reasoning"] == "The user wants weather."
    [call] = choice["message"]["tool_calls"]
    assert CALL_ID.fullmatch(call["id"]) and call["type"] == "function" and call["index"] == 0
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}


async def test_openai_chat_streams_tool_call_deltas(server: Server) -> None:
    name = await model(server, "qwen", QWEN, QWEN_CALL)
    body = {"model": name, "messages": USER, "tools": [WEATHER_TOOL], "stream": True,
            "reasoning_effort": "none"}  # fmt: skip
    events = sse((await (await post(server, "/v1/chat/completions", body)).get_data()).decode())
    deltas = [e["choices"][0]["delta"] for e in events]
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert len(calls) == 1
    assert calls[0][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # reasoning_effort "none" is think: false: the thinking comes through as text.
    assert "".join(d["content"] for d in deltas).startswith("<think>\nThe user")


async def test_openai_reasoning_streamed(server: Server) -> None:
    name = await model(server, "r1", DEEPSEEK_R1, ["<think>", "hm", "</think>", "Hi"])
    body = {"model": name, "messages": USER, "stream": True, "reasoning_effort": "high"}
    events = sse((await (await post(server, "/v1/chat/completions", body)).get_data()).decode())
    deltas = [e["choices"][0]["delta"] for e in events]
    assert "".join(d.get("reasoning", "") for d in deltas) == "hm"
    assert "".join(d["content"] for d in deltas) == "Hi"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("effort", ["high", "low"])
async def test_openai_reasoning_refused_without_the_capability(server: Server, effort: str) -> None:
    body = {"model": "tiny", "messages": USER, "reasoning_effort": effort}
    r = await post(server, "/v1/chat/completions", body)
    assert r.status_code == 400
    assert (await r.get_json())["error"]["message"] == '"tiny" does not support thinking'


# ----- logprobs (the values' truth is tested on the real model in test_logprobs.py)


async def test_native_logprobs_streamed_with_their_tokens(server: Server) -> None:
    body = {"model": "tiny", "prompt": "hi", "logprobs": True, "options": {"num_predict": 3}}
    chunks = await ndjson(await post(server, "/api/generate", body))
    pieces = [c for c in chunks if not c["done"]]
    assert all(c["logprobs"][0]["token"] == c["response"] for c in pieces)
    assert all("top_logprobs" not in c["logprobs"][0] for c in pieces)
    assert "logprobs" not in chunks[-1]
    with_top = {**body, "stream": False, "top_logprobs": 2}
    reply = await (await post(server, "/api/generate", with_top)).get_json()
    assert [e["token"] for e in reply["logprobs"]] == ["fake1 ", "fake2 ", "fake3 "]
    first = reply["logprobs"][0]
    assert first["bytes"] == list(b"fake1 ")
    assert [t["token"] for t in first["top_logprobs"]] == ["fake1 ", "alt1"]
    # Not asked for: none at all.
    reply = await (await post(server, "/api/generate", {**body, "logprobs": False,
                                                         "stream": False})).get_json()  # fmt: skip
    assert "logprobs" not in reply


async def test_chat_logprobs_and_a_held_back_piece(server: Server) -> None:
    """A piece the tool parser holds back still sends its logprobs, in a chunk of no text."""
    name = await model(server, "qwen", QWEN, ["Hi ", "<tool_call>", '{"name": "get_time", '
                                              '"arguments": {}}', "</tool_call>"])  # fmt: skip
    body = {"model": name, "messages": USER, "tools": [TIME_TOOL], "logprobs": True,
            "think": False}  # fmt: skip
    chunks = await ndjson(await post(server, "/api/chat", body))
    assert sum(len(c.get("logprobs", ())) for c in chunks) == 4
    held = [c for c in chunks if c.get("logprobs") and c["logprobs"][0]["token"] == "<tool_call>"]
    assert held[0]["message"] == {"role": "assistant", "content": ""}
    reply = await (await post(server, "/api/chat", {**body, "stream": False})).get_json()
    assert len(reply["logprobs"]) == 4 and reply["message"]["tool_calls"]


@pytest.mark.parametrize("top", [-1, 21])
async def test_top_logprobs_out_of_range(server: Server, top: int) -> None:
    for path, extra in (("/api/generate", {"prompt": "x"}), ("/api/chat", {"messages": USER})):
        r = await post(server, path, {"model": "tiny", "logprobs": True, "top_logprobs": top,
                                      **extra})  # fmt: skip
        assert r.status_code == 400
        assert await r.get_json() == {"error": "top_logprobs must be between 0 and 20"}


async def test_openai_logprobs(server: Server) -> None:
    body = {"model": "tiny", "messages": USER, "max_tokens": 2, "logprobs": True,
            "top_logprobs": 2}  # fmt: skip
    reply = await (await post(server, "/v1/chat/completions", body)).get_json()
    content = reply["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in content] == ["fake1 ", "fake2 "]
    assert content[0]["top_logprobs"][1] == {"token": "alt1", "logprob": -2.0,
                                             "bytes": list(b"alt1")}  # fmt: skip
    events = sse((await (await post(server, "/v1/chat/completions",
                                    {**body, "stream": True})).get_data()).decode())  # fmt: skip
    streamed = [e for ev in events for e in (ev["choices"][0].get("logprobs") or {}).get(
        "content", ())]  # fmt: skip
    assert [e["token"] for e in streamed] == ["fake1 ", "fake2 "]
    # Completions: the legacy `logprobs: n` asks for n alternatives.
    body = {"model": "tiny", "prompt": "hi", "max_tokens": 2, "logprobs": 3}
    reply = await (await post(server, "/v1/completions", body)).get_json()
    content = reply["choices"][0]["logprobs"]["content"]
    assert len(content) == 2 and len(content[0]["top_logprobs"]) == 3
    reply = await (await post(server, "/v1/completions", {**body, "logprobs": 0})).get_json()
    assert "logprobs" not in reply["choices"][0]


# ----- a model whose PARSER is one of Ollama's built-in ones


async def test_builtin_qwen3_parser_through_chat_and_show(server: Server) -> None:
    create = {"model": "q3", "from": "tiny", "template": QWEN, "parser": "qwen3-thinking",
              "stream": False}  # fmt: skip
    r = await post(server, "/api/create", create)
    assert r.status_code == 200, await r.get_data()
    server.engines.config = FakeConfig(script=(
        "Oslo", " it is.", "</think>", "\n\n", "<tool_call>",
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}', "</tool_call>"))  # fmt: skip
    show = await (await post(server, "/api/show", {"model": "q3"})).get_json()
    assert show["capabilities"] == ["completion", "tools", "thinking"]
    body = {"model": "q3", "messages": USER, "tools": [WEATHER_TOOL], "stream": False}
    message = (await (await post(server, "/api/chat", body)).get_json())["message"]
    assert message["thinking"] == "Oslo it is." and message["content"] == ""
    [call] = message["tool_calls"]
    assert CALL_ID.fullmatch(call["id"]) and call["function"]["arguments"] == {"city": "Oslo"}
    # Generate: the parser reads thinking too; its calls come only with the final chunk.
    reply = await (await post(server, "/api/generate", {"model": "q3", "prompt": "w?",
                                                         "stream": False})).get_json()  # fmt: skip
    assert reply["thinking"] == "Oslo it is." and reply["response"] == ""
    # The runner was told which control tokens to write as text: the parser's tags, on chat
    # and generate alike.
    [engine] = server.engines.made
    assert [r.preserved for r in engine.requests] == [
        ["<think>", "</think>", "<tool_call>", "</tool_call>"]
    ] * 2


async def test_preserved_tokens_of_a_template_tool_tag(server: Server) -> None:
    """Without a built-in parser, a chat offering tools preserves the template's tool-call
    tag, its leading special token where JSON follows it (Ollama: `[TOOL_CALLS]` of
    `[TOOL_CALLS] [`); without tools, or on a raw generate, nothing."""
    await model(server, "mistral", MISTRAL, ["Hi"])
    await model(server, "qwen", QWEN, ["Hi"])
    for name, tools, want in (
        ("mistral", [WEATHER_TOOL], ["[TOOL_CALLS]"]),
        ("qwen", [WEATHER_TOOL], ["<tool_call>"]),
        ("qwen", None, []),
    ):
        body = {"model": name, "messages": USER, "tools": tools, "stream": False}
        assert (await post(server, "/api/chat", body)).status_code == 200
        assert server.engines.made[0].requests[-1].preserved == want, name
    body = {"model": "qwen", "prompt": "<tool_call>", "raw": True, "stream": False}
    assert (await post(server, "/api/generate", body)).status_code == 200
    assert server.engines.made[0].requests[-1].preserved == []


# ----- images


async def test_images_for_a_model_without_vision(server: Server) -> None:
    png = "iVBORw0KGgo="
    no_vision = (
        "image input is not supported - hint: if this is unexpected, you may need to provide "
        "the mmproj"
    )
    message = {"role": "user", "content": "?", "images": [png]}
    requests = [
        ("/api/generate", {"model": "tiny", "prompt": "what is it?", "images": [png]}),
        ("/api/chat", {"model": "tiny", "messages": [message]}),
    ]
    for path, body in requests:
        r = await post(server, path, body)
        assert r.status_code == 400
        assert await r.get_json() == {"error": no_vision}
    r = await post(server, "/v1/chat/completions", {"model": "tiny", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + png}}]}]})  # fmt: skip
    assert r.status_code == 400
    assert (await r.get_json())["error"]["message"] == no_vision
    show = await (await post(server, "/api/show", {"model": "tiny"})).get_json()
    assert "vision" not in show["capabilities"]


async def test_old_thinking_left_out_of_deepseek_r1_prompts(server: Server) -> None:
    await model(server, "deepseek-r1", DEEPSEEK_R1, ["x"])
    history = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>sum it</think>4"},
        {"role": "user", "content": "and 3+3?"},
    ]
    for name, kept in (("deepseek-r1", False), ("tiny", True)):
        body = {"model": name, "messages": history, "_debug_render_only": True, "think": False,
                "stream": False}  # fmt: skip
        if name == "tiny":
            body.pop("think")
        reply = await (await post(server, "/api/chat", body)).get_json()
        rendered = reply["_debug_info"]["rendered_template"]
        assert ("sum it" in rendered) == kept, rendered
        assert "4" in rendered


async def test_structured_output_for_a_thinking_model_runs_twice(server: Server) -> None:
    """As Ollama: the model thinks free of the format; where its answer begins, a second run
    answers under the format, its thinking handed back in the prompt."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    name = await model(server, "r1", DEEPSEEK_R1, ["<think>", "Oslo is cold", "</think>", "Hm"])
    server.engines.config = attrs.evolve(server.engines.config,
                                         format_script=('{"city": ', '"Oslo"}'))  # fmt: skip
    body = {"model": name, "messages": USER, "format": schema, "stream": False}
    reply = await (await post(server, "/api/chat", body)).get_json()
    assert reply["message"] == {"role": "assistant", "content": '{"city": "Oslo"}',
                                "thinking": "Oslo is cold"}  # fmt: skip
    [engine] = server.engines.made
    first, second = engine.requests
    assert first.format == "" and json.loads(second.format) == schema
    assert "Oslo is cold" in second.prompt and "Oslo is cold" not in first.prompt
    # Without thinking there is one run, under the format from the start.
    body["think"] = False
    reply = await (await post(server, "/api/chat", body)).get_json()
    assert reply["message"]["content"] == '{"city": "Oslo"}'
    assert len(engine.requests) == 3 and engine.requests[2].format
