"""The OpenAI-compatibility translation: requests in, native replies out (as Ollama's
`openai/openai.go` translates them)."""

from __future__ import annotations

import base64
import json
import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from trio_ollama.api import openai as oa
from trio_ollama.api.errors import APIError

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"
PNG_B64 = base64.b64encode(PNG).decode()


def chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return body


def bad_request(call: Any, *args: Any) -> str:
    with pytest.raises(APIError) as info:
        call(*args)
    assert info.value.status == 400
    assert info.value.openai_type == "invalid_request_error"
    return info.value.message


def sse_json(event: bytes) -> dict[str, Any]:
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    parsed: dict[str, Any] = json.loads(event[len(b"data: ") : -2])
    return parsed


# --- chat requests --------------------------------------------------------------------------------


def test_chat_request_defaults() -> None:
    native, opts = oa.chat_request(chat())
    assert native == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"temperature": 1.0, "top_p": 1.0},
    }
    assert opts == oa.ReplyOptions(stream=False, include_usage=False)


def test_chat_request_sampling_options() -> None:
    native, _ = oa.chat_request(
        chat(
            max_tokens=64,
            seed=42,
            stop="END",
            temperature=0.2,
            top_p=0.5,
            frequency_penalty=0.3,
            presence_penalty=0.4,
        )
    )
    assert native["options"] == {
        "stop": ["END"],
        "num_predict": 64,
        "temperature": 0.2,
        "seed": 42,
        "frequency_penalty": 0.3,
        "presence_penalty": 0.4,
        "top_p": 0.5,
    }


def test_chat_request_zero_sampling_values_are_kept() -> None:
    native, _ = oa.chat_request(chat(temperature=0, top_p=0, seed=0))
    assert native["options"] == {"temperature": 0, "top_p": 0, "seed": 0}


def test_chat_request_null_sampling_values_mean_defaults() -> None:
    native, _ = oa.chat_request(chat(temperature=None, top_p=None, max_tokens=None, stop=None))
    assert native["options"] == {"temperature": 1.0, "top_p": 1.0}


def test_chat_request_max_completion_tokens() -> None:
    native, _ = oa.chat_request(chat(max_completion_tokens=10))
    assert native["options"]["num_predict"] == 10
    native, _ = oa.chat_request(chat(max_tokens=5, max_completion_tokens=10))
    assert native["options"]["num_predict"] == 10


def test_chat_request_stop_list_keeps_only_strings() -> None:
    native, _ = oa.chat_request(chat(stop=["a", 1, "b"]))
    assert native["options"]["stop"] == ["a", "b"]
    # An empty list would be null in Ollama, leaving the model's stop words alone.
    native, _ = oa.chat_request(chat(stop=[]))
    assert "stop" not in native["options"]


def test_chat_request_stream_options() -> None:
    native, opts = oa.chat_request(chat(stream=True, stream_options={"include_usage": True}))
    assert native["stream"] is True
    assert opts == oa.ReplyOptions(stream=True, include_usage=True)
    _, opts = oa.chat_request(chat(stream=True, stream_options=None))
    assert opts == oa.ReplyOptions(stream=True, include_usage=False)


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, "json"),
        ({"type": " JSON_OBJECT "}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
        ({"type": "json_schema"}, None),
        ({"type": "text"}, None),
        (None, None),
    ],
)
def test_chat_request_response_format(response_format: Any, expected: Any) -> None:
    native, _ = oa.chat_request(chat(response_format=response_format))
    assert native.get("format") == expected


def test_chat_request_tools_pass_through() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    native, _ = oa.chat_request(chat(tools=tools))
    assert native["tools"] == tools
    native, _ = oa.chat_request(chat(tools=[]))
    assert "tools" not in native


@pytest.mark.parametrize(
    ("fields", "think"),
    [
        ({"reasoning_effort": "high"}, "high"),
        ({"reasoning_effort": "medium"}, "medium"),
        ({"reasoning_effort": "low"}, "low"),
        ({"reasoning_effort": "none"}, False),
        # Ollama HEAD clamps OpenAI's tiers past its own to the nearest one, and takes "max".
        ({"reasoning_effort": "minimal"}, "low"),
        ({"reasoning_effort": "max"}, "max"),
        ({"reasoning_effort": "xhigh"}, "max"),
        ({"reasoning_effort": "ultra"}, "max"),
        ({"reasoning": {"effort": "low"}}, "low"),
        # The object wins over the flat field, even when it says nothing.
        ({"reasoning": {"effort": "high"}, "reasoning_effort": "low"}, "high"),
        ({"reasoning": {}, "reasoning_effort": "low"}, None),
        ({}, None),
    ],
)
def test_chat_request_reasoning(fields: dict[str, Any], think: Any) -> None:
    native, _ = oa.chat_request(chat(**fields))
    assert native.get("think") == think


@pytest.mark.parametrize(
    "fields", [{"reasoning_effort": "extreme"}, {"reasoning": {"effort": "x"}}]
)
def test_chat_request_bad_reasoning(fields: dict[str, Any]) -> None:
    effort = fields.get("reasoning_effort") or fields["reasoning"]["effort"]
    assert bad_request(oa.chat_request, chat(**fields)) == (
        f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", "high", '
        '"xhigh", "ultra", "max", or "none")'
    )


@pytest.mark.parametrize("body", [chat(messages=[]), chat(messages=None), {"model": "m"}, None])
def test_chat_request_empty_messages(body: Any) -> None:
    assert bad_request(oa.chat_request, body) == "[] is too short - 'messages'"


def test_chat_request_content_parts_become_messages() -> None:
    body = chat(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "image_url", "image_url": f"data:image/jpeg;base64,{PNG_B64}"},
                    {"type": "image_url", "image_url": {"url": f"data:;base64,{PNG_B64}"}},
                ],
            }
        ]
    )
    native, _ = oa.chat_request(body)
    assert native["messages"] == [
        {"role": "user", "content": "what is this?"},
        {"role": "user", "content": "", "images": [PNG_B64]},
        {"role": "user", "content": "", "images": [PNG_B64]},
        {"role": "user", "content": "", "images": [PNG_B64]},
    ]
    assert base64.b64decode(native["messages"][1]["images"][0]) == PNG


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "data:image/gif;base64," + PNG_B64,
        "data:image/png;base64,not base64!",
        PNG_B64,
    ],
)
def test_chat_request_bad_image(url: str) -> None:
    body = chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": url}]}])
    assert bad_request(oa.chat_request, body) == "invalid image input"


@pytest.mark.parametrize(
    "part",
    [
        "just a string",
        {"type": "text"},
        {"type": "text", "text": 3},
        {"type": "audio", "audio": "x"},
        {"type": "image_url", "image_url": {"detail": "high"}},
        {"type": "image_url"},
    ],
)
def test_chat_request_bad_part(part: Any) -> None:
    body = chat(messages=[{"role": "user", "content": [part]}])
    assert bad_request(oa.chat_request, body) == "invalid message format"


@pytest.mark.parametrize(
    ("content", "go_type"),
    [(None, "<nil>"), (3, "float64"), (True, "bool"), ({"a": 1}, "map[string]interface {}")],
)
def test_chat_request_bad_content_type(content: Any, go_type: str) -> None:
    body = chat(messages=[{"role": "user", "content": content}])
    assert bad_request(oa.chat_request, body) == f"invalid message content type: {go_type}"


def test_chat_request_missing_content_and_null_message() -> None:
    message = bad_request(oa.chat_request, chat(messages=[{"role": "user"}]))
    assert message == "invalid message content type: <nil>"
    message = bad_request(oa.chat_request, chat(messages=[None]))
    assert message == "invalid message content type: <nil>"


def test_chat_request_tool_call_round_trip() -> None:
    body = chat(
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning": "need the tool",
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city": "Paris", "days": 2}',
                        },
                    },
                    {
                        "id": "call_def456",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc123", "content": "sunny"},
            {"role": "tool", "name": "explicit", "tool_call_id": "call_def456", "content": "noon"},
            {"role": "tool", "tool_call_id": "call_unknown", "content": "?"},
        ]
    )
    native, _ = oa.chat_request(body)
    assert native["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "need the tool",
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "function": {
                        "index": 0,
                        "name": "get_weather",
                        "arguments": {"city": "Paris", "days": 2},
                    },
                },
                {
                    "id": "call_def456",
                    "function": {"index": 1, "name": "get_time", "arguments": {}},
                },
            ],
        },
        {
            "role": "tool",
            "content": "sunny",
            "tool_name": "get_weather",
            "tool_call_id": "call_abc123",
        },
        {
            "role": "tool",
            "content": "noon",
            "tool_name": "explicit",
            "tool_call_id": "call_def456",
        },
        {"role": "tool", "content": "?", "tool_call_id": "call_unknown"},
    ]


def test_chat_request_tool_calls_with_string_content_and_parts() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
    native, _ = oa.chat_request(
        chat(messages=[{"role": "assistant", "content": "calling", "tool_calls": [call]}])
    )
    assert native["messages"][0]["content"] == "calling"
    assert native["messages"][0]["tool_calls"][0]["function"]["arguments"] == {"x": 1}

    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    native, _ = oa.chat_request(
        chat(messages=[{"role": "assistant", "content": parts, "tool_calls": [call]}])
    )
    first, last = native["messages"]
    assert "tool_calls" not in first
    assert last["tool_calls"][0]["function"]["name"] == "f"


def test_chat_request_tool_arguments_already_an_object() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    native, _ = oa.chat_request(chat(messages=[{"role": "assistant", "tool_calls": [call]}]))
    assert native["messages"][0]["tool_calls"][0]["function"]["arguments"] == {"x": 1}


@pytest.mark.parametrize("arguments", ["", "{", "[1, 2]", "3", 5, None])
def test_chat_request_bad_tool_arguments(arguments: Any) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    body = chat(messages=[{"role": "assistant", "content": "", "tool_calls": [call]}])
    assert bad_request(oa.chat_request, body) == "invalid tool call arguments"


def test_chat_request_null_tool_arguments_are_empty() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "null"}}
    native, _ = oa.chat_request(chat(messages=[{"role": "assistant", "tool_calls": [call]}]))
    assert native["messages"][0]["tool_calls"][0]["function"]["arguments"] == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            chat(max_tokens="10"),
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.max_tokens of type int",
        ),
        (
            chat(max_tokens=1.5),
            "json: cannot unmarshal number 1.5 into Go struct field "
            "ChatCompletionRequest.max_tokens of type int",
        ),
        (
            chat(temperature="hot"),
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.temperature of type float64",
        ),
        (
            chat(stream="yes"),
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.stream of type bool",
        ),
        (
            chat(model=3),
            "json: cannot unmarshal number into Go struct field "
            "ChatCompletionRequest.model of type string",
        ),
        (
            chat(messages="hi"),
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.messages of type []openai.Message",
        ),
        (
            chat(messages=["hi"]),
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.messages of type openai.Message",
        ),
        (
            chat(messages=[{"role": 1, "content": "x"}]),
            "json: cannot unmarshal number into Go struct field "
            "Message.messages.role of type string",
        ),
        (
            chat(stream_options={"include_usage": "yes"}),
            "json: cannot unmarshal string into Go struct field "
            "StreamOptions.stream_options.include_usage of type bool",
        ),
        (
            chat(reasoning_effort=True),
            "json: cannot unmarshal bool into Go struct field "
            "ChatCompletionRequest.reasoning_effort of type string",
        ),
        (
            chat(response_format="json"),
            "json: cannot unmarshal string into Go struct field "
            "ChatCompletionRequest.response_format of type openai.ResponseFormat",
        ),
        (
            ["not", "an", "object"],
            "json: cannot unmarshal array into Go value of type openai.ChatCompletionRequest",
        ),
    ],
)
def test_chat_request_type_errors_name_the_field(body: Any, message: str) -> None:
    assert bad_request(oa.chat_request, body) == message


def test_chat_request_first_type_error_in_document_order() -> None:
    body = {"temperature": "x", "model": 1, "messages": []}
    assert "ChatCompletionRequest.temperature" in bad_request(oa.chat_request, body)


# --- completions and embeddings requests ----------------------------------------------------------


def test_completion_request_defaults() -> None:
    native, opts = oa.completion_request({"model": "m", "prompt": "Once"})
    assert native == {
        "model": "m",
        "prompt": "Once",
        "options": {
            "temperature": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "top_p": 1.0,
        },
        "stream": False,
    }
    assert opts == oa.ReplyOptions()


def test_completion_request_all_fields() -> None:
    native, opts = oa.completion_request(
        {
            "model": "m",
            "prompt": "def f(",
            "suffix": "return x",
            "max_tokens": 16,
            "temperature": 0.0,
            "top_p": 0.9,
            "seed": 7,
            "stop": ["\n\n", "```"],
            "frequency_penalty": 0.5,
            "presence_penalty": 0.25,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert native == {
        "model": "m",
        "prompt": "def f(",
        "suffix": "return x",
        "options": {
            "stop": ["\n\n", "```"],
            "num_predict": 16,
            "temperature": 0.0,
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.25,
            "top_p": 0.9,
        },
        "stream": True,
    }
    assert opts == oa.ReplyOptions(stream=True, include_usage=True)


def test_completion_request_top_p_zero_means_one() -> None:
    native, _ = oa.completion_request({"model": "m", "prompt": "x", "top_p": 0})
    assert native["options"]["top_p"] == 1.0


def test_completion_request_stop_string() -> None:
    native, _ = oa.completion_request({"model": "m", "prompt": "x", "stop": "END"})
    assert native["options"]["stop"] == ["END"]


@pytest.mark.parametrize(
    ("stop", "go_type"),
    [([1], "float64"), (["a", None], "<nil>"), ([True], "bool"), ([["a"]], "[]interface {}")],
)
def test_completion_request_bad_stop(stop: Any, go_type: str) -> None:
    message = bad_request(oa.completion_request, {"model": "m", "prompt": "x", "stop": stop})
    assert message == f"invalid type for 'stop' field: {go_type}"


@pytest.mark.parametrize("prompt", [["a", "b"], [1, 2], 5])
def test_completion_request_prompt_must_be_a_string(prompt: Any) -> None:
    message = bad_request(oa.completion_request, {"model": "m", "prompt": prompt})
    assert "CompletionRequest.prompt of type string" in message
    assert message.startswith("json: cannot unmarshal ")


def test_embeddings_request() -> None:
    native, opts = oa.embeddings_request({"model": "e", "input": ["a", "b"], "dimensions": 8})
    assert native == {"model": "e", "input": ["a", "b"], "dimensions": 8}
    assert opts == oa.EmbeddingOptions(model="e", encoding_format="")
    native, _ = oa.embeddings_request({"model": "e", "input": "one"})
    assert native == {"model": "e", "input": "one"}


def test_embeddings_request_empty_string_is_one_input() -> None:
    native, _ = oa.embeddings_request({"model": "e", "input": ""})
    assert native["input"] == [""]


@pytest.mark.parametrize("body", [{"model": "e"}, {"model": "e", "input": None}, {"input": []}])
def test_embeddings_request_no_input(body: dict[str, Any]) -> None:
    assert bad_request(oa.embeddings_request, body) == "invalid input"


@pytest.mark.parametrize("encoding_format", ["float", "base64", "BASE64", "Float"])
def test_embeddings_request_encoding_formats(encoding_format: str) -> None:
    _, opts = oa.embeddings_request(
        {"model": "e", "input": "x", "encoding_format": encoding_format}
    )
    assert opts.encoding_format == encoding_format


def test_embeddings_request_bad_encoding_format() -> None:
    body = {"model": "e", "input": "x", "encoding_format": "int8"}
    assert bad_request(oa.embeddings_request, body) == (
        "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64']."
    )


def test_embeddings_request_dimensions_type() -> None:
    message = bad_request(oa.embeddings_request, {"model": "e", "input": "x", "dimensions": "8"})
    assert message == (
        "json: cannot unmarshal string into Go struct field EmbedRequest.dimensions of type int"
    )


def test_decode_body() -> None:
    assert oa.decode_body(b'{"a": 1}') == {"a": 1}
    assert oa.decode_body(b"null") is None
    assert bad_request(oa.decode_body, b"") == "EOF"
    assert bad_request(oa.decode_body, b"{nope")


# --- chat replies ---------------------------------------------------------------------------------

NATIVE_FINAL_CHAT = {
    "model": "llama3.2",
    "created_at": "2024-06-04T21:38:31.83753Z",
    "message": {"role": "assistant", "content": "Hello there."},
    "done": True,
    "done_reason": "stop",
    "total_duration": 5_000_000,
    "prompt_eval_count": 12,
    "eval_count": 4,
}

NATIVE_TOOL_CALL = {
    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris", "days": 2}}
}


def test_chat_completion() -> None:
    out = oa.chat_completion(NATIVE_FINAL_CHAT, id="chatcmpl-7", created=1_700_000_000)
    assert out == {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "llama3.2",
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.content == "Hello there."
    assert parsed.usage is not None and parsed.usage.total_tokens == 16


def test_chat_completion_length_and_reasoning() -> None:
    native = {
        **NATIVE_FINAL_CHAT,
        "done_reason": "length",
        "message": {"role": "assistant", "content": "Hel", "thinking": "Let me think."},
    }
    out = oa.chat_completion(native, id="chatcmpl-1", created=1)
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["reasoning"] == "Let me think."
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.model_extra == {"reasoning": "Let me think."}


def test_chat_completion_tool_calls() -> None:
    native = {
        **NATIVE_FINAL_CHAT,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_x1y2z3w4", **NATIVE_TOOL_CALL}],
        },
    }
    out = oa.chat_completion(native, id="chatcmpl-1", created=1)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_x1y2z3w4",
            "index": 0,
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":2}'},
        }
    ]
    parsed = ChatCompletion.model_validate(out)
    tool_call = parsed.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(tool_call.function.arguments) == {"city": "Paris", "days": 2}  # type: ignore[union-attr]


def test_tool_call_arguments_survive_both_directions() -> None:
    arguments = {"query": "a < b & c", "n": 3, "nested": {"list": [1, 2.5, None]}}
    native = {
        **NATIVE_FINAL_CHAT,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"index": 0, "name": "search", "arguments": arguments}}],
        },
    }
    out = oa.chat_completion(native, id="chatcmpl-1", created=1)
    openai_call = out["choices"][0]["message"]["tool_calls"][0]
    # Go escapes HTML characters in JSON strings.
    assert "\\u003c" in openai_call["function"]["arguments"]
    back, _ = oa.chat_request(chat(messages=[{"role": "assistant", "tool_calls": [openai_call]}]))
    assert back["messages"][0]["tool_calls"][0]["function"]["arguments"] == arguments


def test_chat_chunks_stream_shapes() -> None:
    pieces = [
        {"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": "lo"}, "done": False},
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 3,
            "eval_count": 2,
        },
    ]
    chunks = [c for p in pieces for c in oa.chat_chunks(p, id="chatcmpl-3", created=99)]
    assert chunks[0] == {
        "id": "chatcmpl-3",
        "object": "chat.completion.chunk",
        "created": 99,
        "model": "m",
        "system_fingerprint": "fp_ollama",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}
        ],
    }
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    # Like Ollama, every delta names the role, not just the first.
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks)
    assert all("usage" not in c for c in chunks)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_chat_chunks_split_reasoning_from_content() -> None:
    native = {
        "model": "m",
        "message": {"role": "assistant", "content": "Answer", "thinking": "hmm"},
        "done": False,
    }
    first, second = oa.chat_chunks(native, id="chatcmpl-1", created=1)
    assert first["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "reasoning": "hmm",
    }
    assert second["choices"][0]["delta"] == {"role": "assistant", "content": "Answer"}
    only_thinking = {"model": "m", "message": {"role": "assistant", "content": "", "thinking": "h"}}
    (chunk,) = oa.chat_chunks(only_thinking, id="chatcmpl-1", created=1)
    assert chunk["choices"][0]["delta"]["reasoning"] == "h"


def test_chat_chunks_tool_calls_finish_reason() -> None:
    with_call = {
        "model": "m",
        "message": {"role": "assistant", "content": "", "tool_calls": [NATIVE_TOOL_CALL]},
        "done": False,
    }
    (chunk,) = oa.chat_chunks(with_call, id="chatcmpl-1", created=1)
    delta_call = chunk["choices"][0]["delta"]["tool_calls"][0]
    assert delta_call["type"] == "function"
    assert delta_call["index"] == 0
    assert json.loads(delta_call["function"]["arguments"]) == {"city": "Paris", "days": 2}
    assert chunk["choices"][0]["finish_reason"] is None
    ChatCompletionChunk.model_validate(chunk)

    final = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True}
    final["done_reason"] = "stop"
    (last,) = oa.chat_chunks(final, id="chatcmpl-1", created=1, tool_call_sent=True)
    assert last["choices"][0]["finish_reason"] == "tool_calls"
    (last,) = oa.chat_chunks(final, id="chatcmpl-1", created=1, tool_call_sent=False)
    assert last["choices"][0]["finish_reason"] == "stop"


def test_chat_usage_chunk() -> None:
    chunk = oa.chat_usage_chunk(NATIVE_FINAL_CHAT, id="chatcmpl-2", created=5)
    assert chunk == {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "llama3.2",
        "system_fingerprint": "fp_ollama",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
    parsed = ChatCompletionChunk.model_validate(chunk)
    assert parsed.usage is not None and parsed.usage.completion_tokens == 4


def test_chat_stream_events() -> None:
    stream = oa.ChatStream(id="chatcmpl-9", created=10, include_usage=True)
    events = stream.events(
        {
            "model": "m",
            "message": {"role": "assistant", "content": "", "tool_calls": [NATIVE_TOOL_CALL]},
        }
    )
    assert stream.tool_call_sent
    events += stream.events(
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 1,
            "eval_count": 2,
        }
    )
    assert events[-1] == oa.SSE_DONE == b"data: [DONE]\n\n"
    tool, final, usage = (sse_json(e) for e in events[:-1])
    assert tool["choices"][0]["delta"]["tool_calls"]
    assert final["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    for event in (tool, final, usage):
        ChatCompletionChunk.model_validate(event)


def test_chat_stream_without_usage_and_with_error() -> None:
    stream = oa.ChatStream(id="chatcmpl-9", created=10)
    events = stream.events(
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
        }
    )
    assert len(events) == 2 and events[-1] == oa.SSE_DONE
    (error,) = oa.ChatStream(id="x", created=1).events({"error": "runner crashed"})
    assert sse_json(error) == oa.error_body(500, "runner crashed")


# --- completions replies --------------------------------------------------------------------------

NATIVE_FINAL_GENERATE = {
    "model": "m",
    "created_at": "2024-06-04T21:38:31.83753Z",
    "response": "upon a time",
    "done": True,
    "done_reason": "length",
    "context": [1, 2, 3],
    "prompt_eval_count": 2,
    "eval_count": 3,
}


def test_completion() -> None:
    out = oa.completion(NATIVE_FINAL_GENERATE, id="cmpl-4", created=123)
    assert out == {
        "id": "cmpl-4",
        "object": "text_completion",
        "created": 123,
        "model": "m",
        "system_fingerprint": "fp_ollama",
        "choices": [{"text": "upon a time", "index": 0, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    }
    parsed = Completion.model_validate(out)
    assert parsed.choices[0].text == "upon a time"


def test_completion_chunks() -> None:
    piece = {"model": "m", "response": "up", "done": False}
    chunk = oa.completion_chunk(piece, id="cmpl-4", created=1)
    assert chunk == {
        "id": "cmpl-4",
        "object": "text_completion",
        "created": 1,
        "choices": [{"text": "up", "index": 0, "finish_reason": None}],
        "model": "m",
        "system_fingerprint": "fp_ollama",
    }
    zeros = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert oa.completion_chunk(piece, id="c", created=1, include_usage=True)["usage"] == zeros
    final = oa.completion_chunk({**NATIVE_FINAL_GENERATE, "response": ""}, id="cmpl-4", created=1)
    assert final["choices"][0]["finish_reason"] == "length"
    Completion.model_validate(final)


def test_completion_stream_events() -> None:
    stream = oa.CompletionStream(id="cmpl-1", created=1, include_usage=True)
    events = stream.events({"model": "m", "response": "a", "done": False})
    events += stream.events({**NATIVE_FINAL_GENERATE, "response": ""})
    assert events[-1] == oa.SSE_DONE
    first, last, usage = (sse_json(e) for e in events[:-1])
    assert first["choices"][0]["text"] == "a"
    assert last["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    Completion.model_validate(usage)
    plain = oa.CompletionStream(id="cmpl-1", created=1)
    assert len(plain.events(NATIVE_FINAL_GENERATE)) == 2


# --- embeddings, models, errors, framing ----------------------------------------------------------

VECTORS = [[0.1, -0.25, 3.0], [1.0, 0.0, -1.5]]
NATIVE_EMBED = {
    "model": "e",
    "embeddings": VECTORS,
    "total_duration": 1000,
    "prompt_eval_count": 7,
}


def test_embeddings_float() -> None:
    out = oa.embeddings(NATIVE_EMBED, "e", "float")
    assert out == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.1, -0.25, 3.0], "index": 0},
            {"object": "embedding", "embedding": [1.0, 0.0, -1.5], "index": 1},
        ],
        "model": "e",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    parsed = CreateEmbeddingResponse.model_validate(out)
    assert parsed.data[1].embedding == [1.0, 0.0, -1.5]
    assert oa.embeddings(NATIVE_EMBED, "e") == out


@pytest.mark.parametrize("encoding_format", ["base64", "BASE64"])
def test_embeddings_base64_round_trip(encoding_format: str) -> None:
    out = oa.embeddings(NATIVE_EMBED, "e", encoding_format)
    for item, vector in zip(out["data"], VECTORS, strict=True):
        raw = base64.b64decode(item["embedding"])
        assert len(raw) == 4 * len(vector)
        decoded = struct.unpack(f"<{len(vector)}f", raw)
        expected = struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector))
        assert decoded == expected
        assert decoded == pytest.approx(vector, rel=1e-6)
    # The openai client decodes base64 itself before building its model; do the same.
    decoded_out = {
        **out,
        "data": [
            {**d, "embedding": list(struct.unpack(f"<{len(v)}f", base64.b64decode(d["embedding"])))}
            for d, v in zip(out["data"], VECTORS, strict=True)
        ],
    }
    CreateEmbeddingResponse.model_validate(decoded_out)


def test_embeddings_empty_like_ollama() -> None:
    out = oa.embeddings({"model": "e", "embeddings": []}, "e")
    assert out == {
        "object": "list",
        "data": None,
        "model": "e",
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
    assert oa.embeddings({}, "e")["data"] is None


def test_models_list() -> None:
    tags = [
        {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": "2024-06-04T14:38:31.83753-07:00",
            "size": 1,
            "digest": "ab",
        },
        {"name": "user/m:tag", "modified_at": datetime(2024, 1, 1, tzinfo=UTC)},
        {"name": "example.com/ns/m:t", "modified_at": 1_700_000_000.9},
    ]
    out = oa.models_list(tags)
    assert out == {
        "object": "list",
        "data": [
            {
                "id": "llama3.2:latest",
                "object": "model",
                "created": 1717537111,
                "owned_by": "library",
            },
            {"id": "user/m:tag", "object": "model", "created": 1704067200, "owned_by": "user"},
            {
                "id": "example.com/ns/m:t",
                "object": "model",
                "created": 1700000000,
                "owned_by": "ns",
            },
        ],
    }
    for item in out["data"]:
        Model.model_validate(item)


def test_models_list_empty_is_null() -> None:
    assert oa.models_list([]) == {"object": "list", "data": None}


def test_model_retrieve() -> None:
    when = datetime(2024, 6, 4, 14, 38, 31, 837530, tzinfo=timezone(timedelta(hours=-7)))
    out = oa.model_retrieve("Llama3.2", when)
    assert out == {
        "id": "Llama3.2",
        "object": "model",
        "created": 1717537111,
        "owned_by": "library",
    }
    Model.model_validate(out)
    # A naive datetime is local time, as Go's modification times are.
    naive = datetime(2024, 1, 1, 12, 0, 0)
    assert oa.model_retrieve("m", naive)["created"] == int(naive.timestamp())


@pytest.mark.parametrize(
    ("status", "openai_type", "expected"),
    [
        (400, None, "invalid_request_error"),
        (404, None, "not_found_error"),
        (500, None, "api_error"),
        (503, None, "api_error"),
        (499, None, "api_error"),
        (400, "api_error", "api_error"),
        (404, "invalid_request_error", "invalid_request_error"),
    ],
)
def test_error_body(status: int, openai_type: str | None, expected: str) -> None:
    assert oa.error_body(status, "boom", openai_type) == {
        "error": {"message": "boom", "type": expected, "param": None, "code": None}
    }


def test_error_body_from_api_error() -> None:
    with pytest.raises(APIError) as info:
        oa.chat_request(chat(messages=[]))
    exc = info.value
    assert oa.error_body(exc.status, exc.message, exc.openai_type) == {
        "error": {
            "message": "[] is too short - 'messages'",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_sse_event() -> None:
    assert oa.sse_event({"a": 1, "b": [1, 2], "c": "<x>"}) == (
        b'data: {"a":1,"b":[1,2],"c":"\\u003cx\\u003e"}\n\n'
    )
    assert oa.sse_event("[DONE]") == oa.SSE_DONE


def test_ids() -> None:
    rng = random.Random(1)
    ids = {oa.chat_completion_id(rng) for _ in range(200)}
    assert all(i.startswith("chatcmpl-") and 0 <= int(i[9:]) <= 998 for i in ids)
    cid = oa.completion_id()
    assert cid.startswith("cmpl-") and 0 <= int(cid[5:]) <= 998
