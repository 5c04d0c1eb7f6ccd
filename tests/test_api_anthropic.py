"""Anthropic's Messages API (`/v1/messages`): every mapping rule of the pure translation
(`trio_ollama/api/anthropic.py`, Ollama HEAD's `anthropic/anthropic.go`), then the real server
and model driven by the official `anthropic` client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent

from tests.inprocess import Server, post
from tests.templates_with_tools import TOOLS_MODEL, server_with_tools_model
from trio_ollama.api import anthropic as an
from trio_ollama.api.errors import APIError
from trio_ollama.runner.fake import FakeConfig

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"
PNG_B64 = base64.b64encode(PNG).decode()
EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": "test-model",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    out.update(fields)
    return out


def native_of(**fields: Any) -> dict[str, Any]:
    native, _ = an.messages_request(body(**fields))
    return native


def bad_request(value: Any) -> str:
    with pytest.raises(APIError) as info:
        an.messages_request(value)
    assert info.value.status == 400
    return info.value.message


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(data: str = PNG_B64, kind: str = "base64") -> dict[str, Any]:
    return {"type": "image", "source": {"type": kind, "media_type": "image/png", "data": data}}


# --- requests: the basics -------------------------------------------------------------------------


def test_basic_request() -> None:
    native, options = an.messages_request(body())
    assert native == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "Hello"}],
        "options": {"num_predict": 1024},
        "stream": False,
    }
    assert options == an.MessagesOptions(stream=False, model="test-model", estimated_input_tokens=2)


def test_system_prompt_string_and_blocks() -> None:
    assert native_of(system="You are helpful.")["messages"][0] == {
        "role": "system",
        "content": "You are helpful.",
    }
    blocks = [text("You are helpful. "), {"type": "image"}, text("Be concise."), "junk"]
    assert native_of(system=blocks)["messages"][0] == {
        "role": "system",
        "content": "You are helpful. Be concise.",
    }
    # Nothing to say: no system message at all.
    assert native_of(system="")["messages"] == [{"role": "user", "content": "Hello"}]
    assert native_of(system=[])["messages"] == [{"role": "user", "content": "Hello"}]


def test_sampling_options() -> None:
    native = native_of(
        temperature=0.7, top_p=0.9, top_k=40, stop_sequences=["\n", "END"], max_tokens=2048
    )
    assert native["options"] == {
        "num_predict": 2048,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["\n", "END"],
    }
    # Zero is a value, not absence; an empty stop list is nothing.
    native = native_of(temperature=0, top_p=0, top_k=0, stop_sequences=[])
    assert native["options"] == {"num_predict": 1024, "temperature": 0, "top_p": 0, "top_k": 0}


def test_stream_flag() -> None:
    native, options = an.messages_request(body(stream=True))
    assert native["stream"] is True and options.stream


def test_required_fields_in_ollamas_order_and_words() -> None:
    assert bad_request(body(model="")) == "model is required"
    assert bad_request({"max_tokens": 5, "messages": []}) == "model is required"
    assert bad_request(body(max_tokens=0)) == "max_tokens is required and must be positive"
    assert bad_request(body(max_tokens=-1)) == "max_tokens is required and must be positive"
    assert bad_request({"model": "m", "messages": [text("x")]}) == (
        "max_tokens is required and must be positive"
    )
    assert bad_request(body(messages=[])) == "messages is required"
    assert bad_request(None) == "model is required"  # `null` is Go's empty struct


def test_wrong_types_get_gos_decode_error() -> None:
    assert bad_request(body(max_tokens="10")) == (
        "json: cannot unmarshal string into Go struct field MessagesRequest.max_tokens of type int"
    )
    assert bad_request(body(stop_sequences="END")) == (
        "json: cannot unmarshal string into Go struct field MessagesRequest.stop_sequences "
        "of type []string"
    )
    assert "cannot unmarshal number" in bad_request(body(messages=[{"role": "user", "content": 5}]))
    assert "cannot unmarshal string" in bad_request(
        body(messages=[user({"type": "tool_use", "id": "t", "name": "f", "input": "x"})])
    )
    assert bad_request([1]) == (
        "json: cannot unmarshal array into Go value of type anthropic.MessagesRequest"
    )


# --- requests: content blocks ---------------------------------------------------------------------


def test_text_blocks_are_joined() -> None:
    messages = native_of(messages=[user(text("Hello "), text("world"))])["messages"]
    assert messages == [{"role": "user", "content": "Hello world"}]


def test_image_blocks() -> None:
    messages = native_of(messages=[user(text("What is this?"), image())])["messages"]
    assert messages == [{"role": "user", "content": "What is this?", "images": [PNG_B64]}]
    assert bad_request(body(messages=[user(image(kind="url"))])) == (
        "invalid image source type: url. Only base64 images are supported."
    )
    assert bad_request(body(messages=[user(image(data="not base64!"))])).startswith(
        "invalid base64 image data: "
    )
    assert bad_request(body(messages=[user({"type": "image"})])) == "invalid image source"


def test_tool_use_becomes_a_native_tool_call() -> None:
    call = {
        "type": "tool_use",
        "id": "call_123",
        "name": "get_weather",
        "input": {"location": "Paris"},
    }
    messages = native_of(
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            assistant(call),
        ]
    )["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_123",
                "function": {"name": "get_weather", "arguments": {"location": "Paris"}},
            }
        ],
    }
    # No input at all: no arguments.
    bare = {"type": "tool_use", "id": "c", "name": "now"}
    messages = native_of(messages=[assistant(bare)])["messages"]
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == {}


def test_tool_use_needs_an_id_and_a_name() -> None:
    no_id = {"type": "tool_use", "name": "f", "input": {}}
    no_name = {"type": "tool_use", "id": "call_1", "input": {}}
    assert bad_request(body(messages=[assistant(no_id)])) == (
        "tool_use block missing required 'id' field"
    )
    assert bad_request(body(messages=[assistant(no_name)])) == (
        "tool_use block missing required 'name' field"
    )


def test_tool_results_become_tool_messages_before_the_users_text() -> None:
    result = {"type": "tool_result", "tool_use_id": "call_123", "content": "Sunny, 22C"}
    messages = native_of(messages=[user(result, text("And tomorrow?"))])["messages"]
    assert messages == [
        {"role": "tool", "content": "Sunny, 22C", "tool_call_id": "call_123"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    # Only results: no empty user message after them.
    messages = native_of(messages=[user(result)])["messages"]
    assert messages == [{"role": "tool", "content": "Sunny, 22C", "tool_call_id": "call_123"}]


def test_tool_result_content_blocks() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": [text("line 1, "), image(), text("line 2"), {"type": "other"}],
    }
    messages = native_of(messages=[user(result)])["messages"]
    assert messages == [
        {"role": "tool", "content": "line 1, line 2", "images": [PNG_B64], "tool_call_id": "c1"}
    ]
    # Neither a string nor blocks: empty, as in Ollama.
    odd = {"type": "tool_result", "tool_use_id": "c2", "content": {"x": 1}}
    assert native_of(messages=[user(odd)])["messages"][0]["content"] == ""
    broken = {"type": "tool_result", "tool_use_id": "c3", "content": [{"type": "image"}]}
    assert bad_request(body(messages=[user(broken)])) == "invalid tool_result image source"


def test_tool_results_in_an_assistant_message_follow_it() -> None:
    result = {"type": "tool_result", "tool_use_id": "c1", "content": "x"}
    messages = native_of(messages=[assistant(text("Done."), result)])["messages"]
    assert [m["role"] for m in messages] == ["assistant", "tool"]


def test_thinking_blocks() -> None:
    thought = {"type": "thinking", "thinking": "Let me think.", "signature": "sig"}
    messages = native_of(messages=[assistant(thought, text("Answer."))])["messages"]
    assert messages == [{"role": "assistant", "content": "Answer.", "thinking": "Let me think."}]
    # A thinking block alone still makes the message.
    messages = native_of(messages=[assistant(thought)])["messages"]
    assert messages == [{"role": "assistant", "content": "", "thinking": "Let me think."}]


def test_unknown_and_empty_blocks_are_skipped() -> None:
    messages = native_of(
        messages=[user(text("hi")), assistant({"type": "redacted_thinking", "data": "x"})]
    )["messages"]
    assert messages == [{"role": "user", "content": "hi"}]


def test_roles_are_lowercased() -> None:
    assert native_of(messages=[{"role": "USER", "content": [text("x")]}])["messages"] == [
        {"role": "user", "content": "x"}
    ]


# --- requests: tools and thinking -----------------------------------------------------------------


def test_tools_become_native_function_tools() -> None:
    schema = {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    }
    native = native_of(
        tools=[
            {"name": "get_weather", "description": "Get the weather", "input_schema": schema},
            {"name": "now"},
        ],
        tool_choice={"type": "any"},  # accepted and, as in Ollama, not acted on
    )
    assert native["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather",
                "parameters": schema,
            },
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert "tools" not in native_of()


def test_invalid_tool_schema() -> None:
    message = bad_request(body(tools=[{"name": "bad", "input_schema": "not an object"}]))
    assert message == (
        'invalid input_schema for tool "bad": json: cannot unmarshal string into Go value '
        "of type api.ToolFunctionParameters"
    )


SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}


def test_web_search_is_a_function_the_model_may_call() -> None:
    # Claude Code's server tool is accepted as Ollama accepts it: a function of Ollama's own
    # description, which owns its name (the client's `web_search` beside it is dropped).
    mine = {"name": "web_search", "input_schema": {"type": "object"}}
    native, options = an.messages_request(body(tools=[mine, SEARCH_TOOL, {"name": "now"}]))
    assert [tool["function"]["name"] for tool in native["tools"]] == ["web_search", "now"]
    assert native["tools"][0] == {
        "type": "function",
        "function": {
            "name": "web_search",
            "description": "Search the web for current information. "
            "Use this to find up-to-date information about any topic.",
            "parameters": {
                "type": "object",
                "required": ["query"],
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "The search query to look up on the web",
                    }
                },
            },
        },
    }
    assert options.web_search
    # Without the server tool, a client's own `web_search` is an ordinary tool.
    native, options = an.messages_request(body(tools=[mine]))
    assert native["tools"][0]["function"]["parameters"] == {"type": "object"}
    assert not options.web_search


def test_what_claude_code_sends_beside_its_messages_is_accepted() -> None:
    # Beta fields, cache_control on blocks and tools, metadata: read past, as Go reads a body.
    native = native_of(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[user({"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}})],
        tools=[{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": {}}],
        metadata={"user_id": "u"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        thinking={"type": "enabled", "budget_tokens": 31999},
        betas=["interleaved-thinking-2025-05-14"],
    )
    assert native["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert native["tools"][0]["function"]["name"] == "Bash" and native["think"] is True


def test_past_web_searches_reach_the_model() -> None:
    # As Ollama keeps them: the server tool's call is the assistant's call, its result a tool
    # message (a line for each result, or the error's code).
    results = [
        {"type": "web_search_result", "title": "Paris", "url": "https://a.example"},
        {"type": "web_search_result", "title": "France", "url": "https://b.example"},
    ]
    messages = native_of(
        messages=[
            user(text("Search.")),
            assistant(
                {"type": "server_tool_use", "id": "s1", "name": "web_search",
                 "input": {"query": "capital"}},
                {"type": "web_search_tool_result", "tool_use_id": "s1", "content": results},
                text("Paris."),
            ),
        ]
    )["messages"]  # fmt: skip
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": "Paris.",
            "tool_calls": [
                {"id": "s1", "function": {"name": "web_search", "arguments": {"query": "capital"}}}
            ],
        },
        {
            "role": "tool",
            "content": "- Paris: https://a.example\n- France: https://b.example\n",
            "tool_call_id": "s1",
        },
    ]
    for content, said in [
        ({"type": "web_search_tool_result_error", "error_code": "unavailable"},
         "web_search_tool_result_error: unavailable"),
        ([{"type": "web_search_tool_result_error"}], "web_search_tool_result_error"),
        ("plain", "plain"),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ]:  # fmt: skip
        block = {"type": "web_search_tool_result", "tool_use_id": "s1", "content": content}
        assert native_of(messages=[assistant(block)])["messages"][0]["content"] == said


@pytest.mark.parametrize(
    ("fields", "think"),
    [
        ({}, None),
        ({"thinking": {"type": "enabled", "budget_tokens": 1000}}, True),
        ({"thinking": {"type": "disabled"}}, False),
        ({"output_config": {"effort": "medium"}}, "medium"),
        ({"output_config": {"effort": " XHigh "}}, "high"),
        ({"output_config": {"effort": "max"}}, "max"),
        ({"output_config": {"effort": "bogus"}}, None),
        # `thinking` decides when it says enabled or disabled, else the effort does.
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, False),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, "low"),
    ],
)
def test_thinking_to_think(fields: dict[str, Any], think: bool | str | None) -> None:
    native = native_of(**fields)
    assert native.get("think") == think
    assert ("think" in native) == (think is not None)


def test_input_token_estimate() -> None:
    # A quarter of the bytes of roles and texts: "user" + "Hello" = 9 bytes.
    assert an.messages_request(body())[1].estimated_input_tokens == 2
    _, options = an.messages_request(
        body(system="x" * 40, tools=[{"name": "f" * 10, "description": "d" * 10}])
    )
    assert options.estimated_input_tokens == (40 + 9 + 20) // 4
    # Anything at all is at least one token.
    _, options = an.messages_request(body(messages=[{"role": "", "content": ""}]))
    assert options.estimated_input_tokens == 1


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (500, "api_error"),
        (502, "api_error"),
    ],
)
def test_error_body(status: int, kind: str) -> None:
    error = an.error_body(status, "boom")
    assert error["type"] == "error"
    assert error["error"] == {"type": kind, "message": "boom"}
    assert error["request_id"].startswith("req_") and len(error["request_id"]) == 28


def test_message_ids() -> None:
    first, second = an.message_id(), an.message_id()
    assert first.startswith("msg_") and len(first) == 28 and first != second


# --- replies --------------------------------------------------------------------------------------


def final(message: dict[str, Any], reason: str = "stop", **fields: Any) -> dict[str, Any]:
    out = {
        "model": "test-model",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", **message},
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": 10,
        "eval_count": 5,
    }
    out.update(fields)
    return out


def test_message_response_text() -> None:
    reply = an.message_response(final({"content": "Hello there!"}), id="msg_1")
    assert reply == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "test-model",
        "content": [{"type": "text", "text": "Hello there!"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    Message.model_validate(reply)


def test_message_response_thinking_text_and_tool_calls() -> None:
    calls = [
        {
            "id": "call_1",
            "function": {"index": 0, "name": "get_weather", "arguments": {"location": "Paris"}},
        },
        {"id": "call_2", "function": {"index": 1, "name": "now", "arguments": {}}},
    ]
    native = final({"content": "Let me check.", "thinking": "Hmm.", "tool_calls": calls})
    reply = an.message_response(native, id="msg_1")
    assert reply["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": ""},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
    ]
    assert reply["stop_reason"] == "tool_use"
    message = Message.model_validate(reply)
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]


def test_message_response_empty_answer_is_an_empty_list() -> None:
    reply = an.message_response(final({"content": ""}, reason="length"), id="msg_1")
    assert reply["content"] == [] and reply["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("done_reason", "tools", "expected"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("unload", False, "stop_sequence"),  # any other reason, as in Ollama
        ("", False, ""),
        ("stop", True, "tool_use"),
        ("length", True, "tool_use"),
    ],
)
def test_stop_reason(done_reason: str, tools: bool, expected: str) -> None:
    assert an.stop_reason(done_reason, tools) == expected


def test_message_response_without_done_reason_has_no_stop_reason() -> None:
    reply = an.message_response(final({"content": "x"}, reason=""), id="m")
    assert "stop_reason" not in reply


SEARCH_CALL = {
    "id": "call_s",
    "function": {"index": 0, "name": "web_search", "arguments": {"query": "capital of France"}},
}
SEARCH_FAILED = [
    {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "capital of France"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"},
    },
]


def test_a_web_search_is_answered_with_its_failure() -> None:
    # Ollama searches on ollama.com; this server cannot, and says so as Ollama says a failed
    # search: the server tool's blocks, the result an `unavailable` error, the turn ended.
    native = final({"content": "Let me look.", "tool_calls": [SEARCH_CALL, WEATHER]})
    reply = an.message_response(native, id="msg_1", web_search=True)
    assert reply["content"] == SEARCH_FAILED
    assert reply["stop_reason"] == "end_turn" and reply["usage"]["output_tokens"] == 5
    message = Message.model_validate(reply)
    assert [block.type for block in message.content] == [
        "server_tool_use",
        "web_search_tool_result",
    ]
    # A call without a query is the tool's input at fault.
    no_query = {"function": {"name": "web_search", "arguments": {}}}
    reply = an.message_response(final({"tool_calls": [no_query]}), id="msg_1", web_search=True)
    assert reply["content"][1]["content"]["error_code"] == "invalid_tool_input"
    Message.model_validate(reply)
    # Without the server tool offered, `web_search` is the client's own function.
    reply = an.message_response(native, id="msg_1")
    assert [block["type"] for block in reply["content"]] == ["text", "tool_use", "tool_use"]


# --- streams --------------------------------------------------------------------------------------


def chunk(content: str = "", thinking: str = "", tool_calls: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "model": "test-model",
        "created_at": "2026-01-01T00:00:00Z",
        "message": message,
        "done": False,
    }


def done(reason: str = "stop") -> dict[str, Any]:
    return final({"content": ""}, reason=reason)


def run(stream: an.MessagesStream, *natives: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events, each checked against the SSE framing and Anthropic's own event types."""
    out = []
    for native in natives:
        for raw in stream.events(native):
            head, data, blank = raw.decode().split("\n", 2)
            assert head.startswith("event: ") and data.startswith("data: ") and blank == "\n"
            name, parsed = head[len("event: ") :], json.loads(data[len("data: ") :])
            assert parsed["type"] == name
            if name not in ("ping", "error"):
                EVENTS.validate_python(parsed)
            out.append((name, parsed))
    return out


def shape(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each event as `name[index]:detail`, to compare sequences at a glance."""
    out = []
    for name, data in events:
        label = name
        if "index" in data:
            label += f"[{data['index']}]"
        if name == "content_block_start":
            label += ":" + data["content_block"]["type"]
        if name == "content_block_delta":
            delta = data["delta"]
            label += ":" + next(str(v) for k, v in delta.items() if k != "type")
        if name == "message_delta":
            label += ":" + str(data["delta"].get("stop_reason"))
        out.append(label)
    return out


def test_stream_text() -> None:
    stream = an.MessagesStream("msg_1", "test-model", estimated_input_tokens=7)
    events = run(stream, chunk("Hello"), chunk(" world"), done())
    assert shape(events) == [
        "message_start",
        "ping",
        "content_block_start[0]:text",
        "content_block_delta[0]:Hello",
        "content_block_delta[0]: world",
        "content_block_stop[0]",
        "message_delta:end_turn",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "test-model",
        "content": [],
        "usage": {"input_tokens": 7, "output_tokens": 0},
    }
    # The start blocks carry their empty field: clients accumulate into it.
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    assert events[-2][1]["usage"] == {"input_tokens": 10, "output_tokens": 5}


def test_stream_thinking_then_text() -> None:
    stream = an.MessagesStream("m", "test-model")
    events = run(
        stream, chunk(thinking="Let me"), chunk(thinking=" think"), chunk("Answer"), done()
    )
    assert shape(events) == [
        "message_start",
        "ping",
        "content_block_start[0]:thinking",
        "content_block_delta[0]:Let me",
        "content_block_delta[0]: think",
        "content_block_stop[0]",
        "content_block_start[1]:text",
        "content_block_delta[1]:Answer",
        "content_block_stop[1]",
        "message_delta:end_turn",
        "message_stop",
    ]
    assert events[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}


def test_stream_thinking_only_is_closed_at_the_end() -> None:
    events = run(an.MessagesStream("m", "x"), chunk(thinking="Hmm"), done("length"))
    assert shape(events)[-4:] == [
        "content_block_delta[0]:Hmm",
        "content_block_stop[0]",
        "message_delta:max_tokens",
        "message_stop",
    ]


def test_stream_text_before_thinking_gets_blocks_of_its_own() -> None:
    events = run(an.MessagesStream("m", "x"), chunk("Hi"), chunk(thinking="then"), done())
    assert shape(events)[2:] == [
        "content_block_start[0]:text",
        "content_block_delta[0]:Hi",
        "content_block_stop[0]",
        "content_block_start[1]:thinking",
        "content_block_delta[1]:then",
        "content_block_stop[1]",
        "message_delta:end_turn",
        "message_stop",
    ]


WEATHER = {
    "id": "call_1",
    "function": {"index": 0, "name": "get_weather", "arguments": {"location": "Paris", "days": 2}},
}


def test_stream_tool_calls() -> None:
    stream = an.MessagesStream("m", "x")
    events = run(
        stream, chunk("Checking."), chunk(tool_calls=[WEATHER]), chunk(tool_calls=[WEATHER]), done()
    )
    assert shape(events)[2:] == [
        "content_block_start[0]:text",
        "content_block_delta[0]:Checking.",
        "content_block_stop[0]",
        "content_block_start[1]:tool_use",
        'content_block_delta[1]:{"location":"Paris","days":2}',
        "content_block_stop[1]",
        # The same call again (by id) is not sent twice.
        "message_delta:tool_use",
        "message_stop",
    ]
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {},
    }


def test_stream_thinking_directly_followed_by_tool_call() -> None:
    events = run(
        an.MessagesStream("m", "x"),
        chunk(thinking="Need weather"),
        chunk(tool_calls=[WEATHER]),
        done(),
    )
    assert shape(events)[2:] == [
        "content_block_start[0]:thinking",
        "content_block_delta[0]:Need weather",
        "content_block_stop[0]",
        "content_block_start[1]:tool_use",
        'content_block_delta[1]:{"location":"Paris","days":2}',
        "content_block_stop[1]",
        "message_delta:tool_use",
        "message_stop",
    ]


def test_stream_tool_calls_without_ids_are_each_sent() -> None:
    calls = [{"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b"}}]
    events = run(an.MessagesStream("m", "x"), chunk(tool_calls=calls), done())
    starts = [d["content_block"]["name"] for n, d in events if n == "content_block_start"]
    assert starts == ["a", "b"]


def test_stream_web_search_ends_with_its_failure() -> None:
    stream = an.MessagesStream("msg_1", "x", web_search=True)
    events = run(
        stream,
        chunk("Looking."),
        chunk(tool_calls=[SEARCH_CALL]),
        chunk("dropped"),
        chunk(tool_calls=[WEATHER]),
        done(),
    )
    assert shape(events)[2:] == [
        "content_block_start[0]:text",
        "content_block_delta[0]:Looking.",
        "content_block_stop[0]",
        "content_block_start[1]:server_tool_use",
        "content_block_stop[1]",
        "content_block_start[2]:web_search_tool_result",
        "content_block_stop[2]",
        "message_delta:end_turn",
        "message_stop",
    ]
    assert [data["content_block"] for name, data in events if name == "content_block_start"][
        1:
    ] == SEARCH_FAILED
    assert events[-2][1]["usage"] == {"input_tokens": 10, "output_tokens": 5}


def test_stream_with_no_output_at_all() -> None:
    events = run(an.MessagesStream("m", "x"), done())
    assert shape(events) == ["message_start", "ping", "message_delta:end_turn", "message_stop"]


def test_stream_error_is_an_error_event() -> None:
    stream = an.MessagesStream("m", "x")
    run(stream, chunk("a"))
    events = run(stream, {"error": "the runner died"})
    assert events == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "the runner died"}})
    ]
    raw = stream.error_event(APIError(503, "busy"))
    assert b'"type":"overloaded_error"' in raw


def test_a_stream_accumulates_to_the_message_reply() -> None:
    """The official client's own accumulation of the events (fed through a mock transport)
    gives what the non-streaming reply says."""
    natives = [
        chunk(thinking="Hmm."),
        chunk("Let me "),
        chunk("check."),
        chunk(tool_calls=[WEATHER]),
        done(),
    ]
    stream = an.MessagesStream("msg_1", "test-model")
    sse = b"".join(raw for native in natives for raw in stream.events(native))

    # The client's own HTTP package (its fork of httpx), so its transport can be mocked.
    def answer(request: Any) -> Any:
        return httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = anthropic.Anthropic(base_url="http://test", api_key="x", http_client=http)
    with client.messages.stream(model="test-model", max_tokens=5, messages=QUESTION) as events:
        accumulated = events.get_final_message()
    whole = final({"content": "Let me check.", "thinking": "Hmm.", "tool_calls": [WEATHER]})
    expected = Message.model_validate(an.message_response(whole, id="msg_1"))
    assert accumulated.model_dump(exclude_none=True) == expected.model_dump(exclude_none=True)


def test_client_tool_use_round_trip_through_the_translation() -> None:
    """The official client's whole tool loop against the translation (a mock transport runs
    `messages_request` and `message_response` where the server would run the model): its
    tool_use block comes from a scripted native tool call, and the tool_result it sends back
    reaches the native chat as the call followed by its result."""
    seen: list[dict[str, Any]] = []

    def answer(request: Any) -> Any:
        native, _ = an.messages_request(json.loads(request.content))
        seen.append(native)
        if len(seen) == 1:
            reply = final({"content": "", "tool_calls": [WEATHER]})
        else:
            reply = final({"content": "It is sunny in Paris."})
        return httpx2.Response(200, json=an.message_response(reply, id=f"msg_{len(seen)}"))

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = anthropic.Anthropic(base_url="http://test", api_key="x", http_client=http)
    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    question: Any = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(model="m", max_tokens=50, tools=tools, messages=question)
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"location": "Paris", "days": 2}
    result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}
    history: Any = [
        *question,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    second = client.messages.create(model="m", max_tokens=50, tools=tools, messages=history)
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and "sunny" in second.content[0].text
    assert seen[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {
                        "name": "get_weather",
                        "arguments": {"location": "Paris", "days": 2},
                    },
                }
            ],
        },
        {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"},
    ]
    assert seen[1]["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]


# --- the real server and model, through the official client ---------------------------------------

MODEL = "smollm2:135m"
GREEDY: Any = {"temperature": 0}
QUESTION: Any = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Iterator[str]:
    with server_with_tools_model(tmp_path_factory.mktemp("anthropic") / "models") as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[anthropic.Anthropic]:
    # Closed before the server stops: an idle kept-alive connection holds its shutdown.
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.mark.slow
def test_client_messages_create(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=30, messages=QUESTION, extra_body=GREEDY
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert "Paris" in message.content[0].text  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    short = client.messages.create(
        model=MODEL, max_tokens=3, messages=QUESTION, system="Answer in French.", extra_body=GREEDY
    )
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3


@pytest.mark.slow
def test_client_stream(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=MODEL, max_tokens=30, messages=QUESTION, extra_body=GREEDY)
    with client.messages.stream(
        model=MODEL, max_tokens=30, messages=QUESTION, extra_body=GREEDY
    ) as stream:
        pieces = list(stream.text_stream)
        streamed = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == whole.content[0].text  # type: ignore[union-attr]
    assert [(b.type, b.text) for b in streamed.content] == [("text", "".join(pieces))]  # type: ignore[union-attr]
    assert streamed.stop_reason == "end_turn"
    assert streamed.usage.output_tokens == whole.usage.output_tokens


@pytest.mark.slow
def test_raw_event_stream(url: str) -> None:
    request = {
        "model": MODEL,
        "max_tokens": 4,
        "stream": True,
        "messages": QUESTION,
        "temperature": 0,
    }
    r = httpx.post(url + "/v1/messages", json=request, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    names = [line[len("event: ") :] for line in r.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


@pytest.mark.slow
def test_client_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    """The second half of a round trip: the model's tool_use and the client's tool_result go
    back, and the real model answers from them. (The first half, a tool_use block from the
    model's own output, needs the chat path to parse tool calls: see the unit tests above.)"""
    tools: Any = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    messages: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 22 degrees"}
            ],
        },
    ]
    message = client.messages.create(
        model=TOOLS_MODEL, max_tokens=40, tools=tools, messages=messages, extra_body=GREEDY
    )
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.content and message.content[0].type == "text"
    assert message.usage.input_tokens > 30  # the tool call and its result were in the prompt
    # A model whose template knows no tools refuses them, in Anthropic's shape.
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=5, tools=tools, messages=messages)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "does not support tools" in info.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.slow
def test_thinking_is_relaxed_for_a_model_that_cannot(client: anthropic.Anthropic) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    message = client.messages.create(
        model=MODEL, max_tokens=5, messages=QUESTION, thinking=thinking
    )
    assert [block.type for block in message.content] == ["text"]
    effort: Any = {"effort": "high"}
    message = client.messages.create(
        model=MODEL, max_tokens=5, messages=QUESTION, output_config=effort
    )
    assert [block.type for block in message.content] == ["text"]


@pytest.mark.slow
def test_client_errors(client: anthropic.Anthropic, url: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="no-such-model", max_tokens=5, messages=QUESTION)
    error: Any = info.value.body
    assert error["type"] == "error" and error["error"] == {
        "type": "not_found_error",
        "message": "model 'no-such-model' not found",
    }
    with (
        pytest.raises(anthropic.NotFoundError),
        client.messages.stream(model="no-such-model", max_tokens=5, messages=QUESTION),
    ):
        pass
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model=MODEL, max_tokens=0, messages=QUESTION)
    assert bad.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "max_tokens is required and must be positive",
    }
    for raw in (b"", b"{", b"[]", b'{"model": 5}'):
        r = httpx.post(url + "/v1/messages", content=raw, timeout=30)
        assert r.status_code == 400, raw
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "invalid_request_error"
    # The server keeps serving.
    assert client.messages.create(model=MODEL, max_tokens=2, messages=QUESTION).content


# --- failures inside the server (in process, the fake engine) ------------------------------------


async def test_a_failure_after_output_is_a_last_error_event(server: Server) -> None:
    server.engines.config = FakeConfig(crash_after_tokens=3)
    request = {"model": "tiny", "max_tokens": 50, "stream": True, "messages": QUESTION}
    r = await post(server, "/v1/messages", request)
    assert r.status_code == 200 and r.content_type == "text/event-stream"
    events = (await r.get_data()).decode().split("\n\n")
    assert events[0].startswith("event: message_start\n")
    assert events[-2] == (
        "event: error\n"
        'data: {"type":"error","error":{"type":"api_error","message":"runner process exited"}}'
    )
    # Without a stream, the failure is the whole answer, in Anthropic's shape.
    r = await post(server, "/v1/messages", {**request, "stream": False})
    error = await r.get_json()
    assert r.status_code == 500 and error["type"] == "error"
    assert error["error"] == {"type": "api_error", "message": "runner process exited"}
