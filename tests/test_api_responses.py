"""OpenAI's Responses API (`/v1/responses`): every mapping rule of the pure translation
(`trio_ollama/api/openai_responses.py`, Ollama HEAD's `openai/responses.go`), then the real
server and model driven by the official `openai` client."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from tests.inprocess import Server, post
from tests.server import ServerProcess
from tests.templates_with_tools import TOOLS_MODEL, add_tools_model
from trio_ollama.api import openai_responses as orr
from trio_ollama.api.errors import APIError
from trio_ollama.gocompat import decode as go
from trio_ollama.runner.fake import FakeConfig

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"
PNG_B64 = base64.b64encode(PNG).decode()
EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "gpt-oss:20b", "input": "Hello"}
    out.update(fields)
    return out


def native_of(**fields: Any) -> dict[str, Any]:
    native, _ = orr.responses_request(body(**fields))
    return native


def messages_of(*items: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = native_of(input=list(items))["messages"]
    return messages


def bad_request(value: Any) -> str:
    with pytest.raises(APIError) as info:
        orr.responses_request(value)
    assert info.value.status == 400
    assert info.value.openai_type == "invalid_request_error"
    return info.value.message


def message(role: str, content: Any, **fields: Any) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content, **fields}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> Any:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, value: Any = "Sunny") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": value}


def native_call(call_id: str, name: str = "get_weather", **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "function": {"name": name, "arguments": arguments or {"city": "Paris"}}}


# --- requests: the basics -------------------------------------------------------------------------


def test_string_input_and_defaults() -> None:
    native, options = orr.responses_request(body())
    assert native == {
        "model": "gpt-oss:20b",
        "messages": [{"role": "user", "content": "Hello"}],
        # OpenAI's default temperature; top_p is left to the model, as in Ollama.
        "options": {"temperature": 1.0},
        "stream": False,
    }
    assert options.stream is False and options.request.model == "gpt-oss:20b"


def test_instructions_sampling_and_stream() -> None:
    native, options = orr.responses_request(
        body(
            instructions="Be brief.", temperature=0.2, top_p=0.5, max_output_tokens=64, stream=True
        )
    )
    assert native["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert native["options"] == {"temperature": 0.2, "top_p": 0.5, "num_predict": 64}
    assert native["stream"] is True and options.stream
    native = native_of(temperature=0, top_p=0, max_output_tokens=0)
    assert native["options"] == {"temperature": 0, "top_p": 0, "num_predict": 0}


def test_state_is_not_kept_so_previous_response_id_is_ignored() -> None:
    native = native_of(
        previous_response_id="resp_1",
        store=True,
        conversation="c",
        include=["reasoning.encrypted_content"],
        tool_choice="required",
    )
    assert native["messages"] == [{"role": "user", "content": "Hello"}]


def test_empty_input() -> None:
    assert native_of(input="")["messages"] == []
    assert native_of(input=[])["messages"] == []
    assert native_of(input=None, instructions="x")["messages"] == [
        {"role": "system", "content": "x"}
    ]


def test_wrong_types_get_gos_decode_error() -> None:
    assert bad_request(body(temperature="hot")) == (
        "json: cannot unmarshal string into Go struct field ResponsesRequest.temperature "
        "of type float64"
    )
    assert bad_request(body(input=5)) == (
        "input must be a string or array: json: cannot unmarshal number into Go value of "
        "type []json.RawMessage"
    )
    assert bad_request([]) == (
        "json: cannot unmarshal array into Go value of type openai.ResponsesRequest"
    )


# --- requests: input items ------------------------------------------------------------------------


def test_message_items() -> None:
    assert messages_of(
        message("system", "You are helpful."),
        message(
            "user", [{"type": "input_text", "text": "Hi "}, {"type": "input_text", "text": "there"}]
        ),
        message("assistant", [{"type": "output_text", "text": "Hello!"}]),
        # The shorthand: no type, a role.
        {"role": "user", "content": "Bye"},
    ) == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]


def test_developer_messages_are_system_messages() -> None:
    assert messages_of(message("developer", "Rules.")) == [{"role": "system", "content": "Rules."}]


def test_images() -> None:
    url = "data:image/png;base64," + PNG_B64
    parts = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "detail": "auto", "image_url": url},
        {"type": "input_image", "detail": "auto", "file_id": "file_1"},
    ]
    assert messages_of(message("user", parts)) == [
        {"role": "user", "content": "What is this?", "images": [PNG_B64]}
    ]
    remote = [{"type": "input_image", "image_url": "https://example.com/cat.png"}]
    assert bad_request(body(input=[message("user", remote)])) == "invalid image input"


def test_files_are_refused() -> None:
    parts = [{"type": "input_file", "file_data": "abc", "filename": "a.txt"}]
    assert bad_request(body(input=[message("user", parts)])) == (
        "file inputs are not currently supported"
    )


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ({"content": "x"}, "input[0]: input item missing required 'type' field"),
        ({"type": "bogus"}, 'input[0]: unknown input item type: "bogus"'),
        (
            message("user", [{"type": "video", "url": "x"}]),
            "input[0]: content[0]: unknown content type: video",
        ),
        (
            message("user", 5),
            "input[0]: content must be a string or array: json: cannot "
            "unmarshal number into Go value of type []json.RawMessage",
        ),
        (
            output("c", 5),
            "input[0]: output must be a string or array: json: cannot "
            "unmarshal number into Go value of type []json.RawMessage",
        ),
        (
            "hello",
            "input[0]: json: cannot unmarshal string into Go value of type "
            'struct { Type string "json:\\"type\\""; Role string "json:\\"role\\"" }',
        ),
    ],
)
def test_bad_items(item: Any, error: str) -> None:
    assert bad_request(body(input=[item])) == error


def test_function_calls_and_outputs() -> None:
    assert messages_of(
        message("user", "Weather in Paris and Rome?"),
        call("call_1"),
        call("call_2", arguments='{"city":"Rome"}'),
        output("call_1", "Sunny"),
        output(
            "call_2",
            [{"type": "input_text", "text": "Rain, "}, {"type": "output_text", "text": "cold"}],
        ),
    ) == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [native_call("call_1"), native_call("call_2", city="Rome")],
        },
        {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"},
        {"role": "tool", "content": "Rain, cold", "tool_call_id": "call_2"},
    ]


def test_a_function_call_joins_the_assistant_message_before_it() -> None:
    assert messages_of(message("assistant", "Let me check."), call("call_1")) == [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [native_call("call_1")]}
    ]


def test_function_call_output_with_an_image() -> None:
    url = "data:image/png;base64," + PNG_B64
    parts = [{"type": "input_text", "text": "the chart"}, {"type": "input_image", "image_url": url}]
    assert messages_of(output("c1", parts)) == [
        {"role": "tool", "content": "the chart", "images": [PNG_B64], "tool_call_id": "c1"}
    ]


def test_an_assistant_message_replayed_between_call_and_output_is_folded_in() -> None:
    assert messages_of(
        message("assistant", "Checking."),
        call("call_1"),
        message("assistant", "Still checking."),
        output("call_1"),
    ) == [
        {
            "role": "assistant",
            "content": "Checking.\nStill checking.",
            "tool_calls": [native_call("call_1")],
        },
        {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"},
    ]
    # An output for another call: the message stays a message of its own.
    assert len(messages_of(call("call_1"), message("assistant", "x"), output("other"))) == 3


def test_function_call_arguments() -> None:
    assert messages_of(call("c", arguments=""))[0]["tool_calls"][0]["function"]["arguments"] == {}
    assert bad_request(body(input=[call("c", arguments="{not json")])).startswith(
        "failed to parse function call arguments: "
    )
    assert bad_request(body(input=[call("c", arguments="[1]")])).startswith(
        "failed to parse function call arguments: json: cannot unmarshal array"
    )


def test_reasoning_items_become_the_next_assistant_messages_thinking() -> None:
    reasoning = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "encrypted_content": "I thought.",
    }
    assert messages_of(message("user", "Hi"), reasoning, message("assistant", "Hello")) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "thinking": "I thought."},
    ]
    assert messages_of(reasoning, call("call_1")) == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [native_call("call_1")],
            "thinking": "I thought.",
        }
    ]
    # Reasoning with nothing after it still reaches the model.
    assert messages_of(message("user", "Hi"), reasoning)[-1] == {
        "role": "assistant",
        "content": "",
        "thinking": "I thought.",
    }


def test_past_web_searches_are_history_only() -> None:
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed"}
    assert messages_of(message("user", "Hi"), search) == [{"role": "user", "content": "Hi"}]


# --- requests: tools, reasoning, text format ------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_tools_become_native_function_tools() -> None:
    native = native_of(tools=[WEATHER_TOOL, {"type": "function", "name": "now"}])
    assert native["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER_TOOL["parameters"],
            },
        },
        {"type": "function", "function": {"name": "now", "description": ""}},
    ]


def test_namespace_tools_are_flattened_with_a_prefix() -> None:
    namespace = {
        "type": "namespace",
        "name": "files",
        "tools": [
            {"type": "function", "name": "read"},
            {"type": "function", "name": "files.write"},
        ],
    }
    names = [tool["function"]["name"] for tool in native_of(tools=[namespace])["tools"]]
    assert names == ["files.read", "files.write"]


@pytest.mark.parametrize("tool", [
    {"type": "function", "name": "read", "description": "Reads.", "strict": False,
     "parameters": {"type": "object", "properties": {}}},
    {"type": "web_search"},
    {"type": "custom", "name": "apply_patch", "description": "Edits files."},
    {"type": "namespace", "name": "files", "description": "Files.",
     "tools": [{"type": "function", "name": "read", "description": "Reads."}]},
], ids=lambda tool: tool["type"])  # fmt: skip
def test_the_response_echoes_each_tool_in_its_own_types_shape(tool: dict[str, Any]) -> None:
    """What the Response's `tools` says of each tool parses as OpenAI's type for it, strictly:
    no function fields on a web search or a namespace (Codex sends both)."""
    echoed = go.build(orr.Tool, tool, "tool").go_json()
    assert echoed["type"] == tool["type"]
    pydantic.TypeAdapter(openai.types.responses.Tool).validate_python(echoed, strict=True)
    if tool["type"] != "function":
        assert "strict" not in echoed and "parameters" not in echoed


SEARCH = {"type": "web_search", "external_web_access": True}
SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web for current information.",
        "parameters": {
            "type": "object",
            "required": ["query"],
            "properties": {"query": {"type": "string", "description": "The search query."}},
        },
    },
}


def test_web_search_is_a_function_the_model_may_call() -> None:
    # Codex's default tool, as Ollama takes it: a function of Ollama's description, which owns
    # its name (a client's own `web_search` beside it is dropped).
    mine = {"type": "function", "name": "web_search"}
    request = body(tools=[mine, SEARCH, WEATHER_TOOL])
    assert [t["function"]["name"] for t in native_of(**request)["tools"]] == [
        "web_search",
        "get_weather",
    ]
    assert native_of(tools=[SEARCH])["tools"] == [SEARCH_FUNCTION]
    assert request_of(tools=[SEARCH]).web_search and not request_of(tools=[mine]).web_search
    assert native_of(tools=[mine])["tools"] == [
        {"type": "function", "function": {"name": "web_search", "description": ""}}
    ]


def test_codexs_other_tool_types_go_on_as_ollama_passes_them() -> None:
    # A freeform (`custom`) tool and `local_shell` keep their type, as Ollama's convertTool
    # keeps it; Codex's other request fields are read past, as Go reads a body.
    native = native_of(
        tools=[
            {"type": "custom", "name": "apply_patch", "description": "Patch files",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
            {"type": "local_shell"},
        ],
        tool_choice="auto",
        parallel_tool_calls=False,
        store=False,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="abc",
        text={"verbosity": "low"},
        reasoning={"effort": "medium", "summary": "auto"},
    )  # fmt: skip
    assert native["tools"] == [
        {"type": "custom", "function": {"name": "apply_patch", "description": "Patch files"}},
        {"type": "local_shell", "function": {"name": "", "description": ""}},
    ]
    assert native["think"] == "medium"


@pytest.mark.parametrize(
    ("effort", "think"),
    [
        ("", None),
        ("none", False),
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("max", "max"),
        ("xhigh", "max"),
        ("ultra", "max"),
    ],
)
def test_reasoning_effort(effort: str, think: bool | str | None) -> None:
    native = native_of(reasoning={"effort": effort, "summary": "auto"})
    assert native.get("think") == think and ("think" in native) == (think is not None)


def test_invalid_reasoning_effort() -> None:
    assert bad_request(body(reasoning={"effort": "extreme"})) == (
        'invalid reasoning value: "extreme" (must be "minimal", "low", "medium", "high", '
        '"xhigh", "ultra", "max", or "none")'
    )


def test_text_format() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "city", "schema": schema, "strict": True}
    assert native_of(text={"format": fmt})["format"] == schema
    # Plain text, or a schema type without a schema: no format at all.
    assert "format" not in native_of(text={"format": {"type": "text"}})
    assert "format" not in native_of(text={"format": {"type": "json_schema"}})
    assert "format" not in native_of(text={})


# --- replies --------------------------------------------------------------------------------------


def final(message: dict[str, Any], reason: str = "stop") -> dict[str, Any]:
    return {
        "model": "gpt-oss:20b",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", **message},
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": 10,
        "eval_count": 5,
    }


def request_of(**fields: Any) -> orr.ResponsesRequest:
    return orr.responses_request(body(**fields))[1].request


def reply(native: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = orr.response_object(
        native,
        request_of(**fields),
        id="resp_1",
        item="msg_1",
        created=1700000000,
        completed=1700000005,
    )
    Response.model_validate(out)  # the official client's own type for it
    return out


def test_response_object_text() -> None:
    out = reply(final({"content": "Hello!"}))
    assert out["id"] == "resp_1" and out["object"] == "response"
    assert out["status"] == "completed" and out["model"] == "gpt-oss:20b"
    assert (out["created_at"], out["completed_at"]) == (1700000000, 1700000005)
    assert out["output"] == [
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert out["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    assert out["previous_response_id"] is None and out["store"] is False
    assert Response.model_validate(out).output_text == "Hello!"


def test_response_object_echoes_the_request() -> None:
    fmt = {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": True}
    out = reply(
        final({"content": "{}"}),
        instructions="Be brief.",
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=20,
        text={"format": fmt},
        tools=[WEATHER_TOOL],
        reasoning={"effort": "low"},
        truncation="auto",
    )
    assert out["instructions"] == "Be brief."
    assert (out["temperature"], out["top_p"], out["max_output_tokens"]) == (0.5, 0.9, 20)
    assert out["text"] == {"format": fmt} and out["truncation"] == "auto"
    assert out["tools"] == [WEATHER_TOOL]
    assert out["reasoning"] == {"effort": "low", "summary": None}
    defaults = reply(final({"content": "x"}))
    assert defaults["instructions"] is None and defaults["tools"] == []
    assert (defaults["temperature"], defaults["top_p"]) == (1.0, 1.0)
    assert defaults["text"] == {"format": {"type": "text"}} and defaults["reasoning"] is None
    assert defaults["truncation"] == "disabled"


def test_response_object_with_reasoning() -> None:
    out = reply(final({"content": "42", "thinking": "Let me count."}))
    assert out["output"][0] == {
        "id": "rs_resp_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Let me count."}],
        "encrypted_content": "Let me count.",
    }
    assert out["output"][1]["type"] == "message"


def test_response_object_with_tool_calls_has_no_message() -> None:
    calls = [native_call("call_1"), native_call("call_2", city="Rome")]
    out = reply(final({"content": "ignored", "tool_calls": calls}))
    assert out["output"] == [
        {
            "id": "fc_resp_1_0",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "id": "fc_resp_1_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_2",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
        },
    ]


def test_a_web_search_is_answered_as_ollamas_failed_search() -> None:
    # Ollama's answer when its search fails: a 502 in the OpenAI error shape.
    call = native_call("call_s", "web_search", query="capital of France")
    native = final({"content": "", "tool_calls": [native_call("call_1"), call]})
    with pytest.raises(APIError) as info:
        reply(native, tools=[SEARCH, WEATHER_TOOL])
    assert (info.value.status, info.value.openai_type) == (502, None)
    assert info.value.message == "web search is unavailable: this server does not reach the network"
    empty = native_call("call_s", "web_search", query=" ")
    with pytest.raises(APIError) as info:
        reply(final({"tool_calls": [empty]}), tools=[SEARCH])
    assert info.value.message == "web_search requires a non-empty string query"
    # Without the built-in tool offered, `web_search` is the client's own function.
    out = reply(native, tools=[WEATHER_TOOL])
    assert [item["name"] for item in out["output"]] == ["get_weather", "web_search"]


def test_response_object_with_no_text_still_has_its_message() -> None:
    out = reply(final({"content": ""}, reason="length"))
    assert out["output"][0]["content"][0]["text"] == ""


def test_ids() -> None:
    rng = random.Random(1)
    assert orr.response_id(rng).startswith("resp_") and orr.item_id(rng).startswith("msg_")


# --- streams --------------------------------------------------------------------------------------


def chunk(content: str = "", thinking: str = "", tool_calls: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        msg["thinking"] = thinking
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {
        "model": "gpt-oss:20b",
        "created_at": "2026-01-01T00:00:00Z",
        "message": msg,
        "done": False,
    }


def new_stream(**fields: Any) -> orr.ResponsesStream:
    return orr.ResponsesStream(
        request_of(**fields), "resp_1", "msg_1", 1700000000, rng=random.Random(0)
    )


def run(stream: orr.ResponsesStream, *natives: dict[str, Any]) -> list[dict[str, Any]]:
    """The events' data, each checked against the SSE framing and the client's event types."""
    out = []
    for native in natives:
        for raw in stream.events(native, completed=1700000009):
            head, data, blank = raw.decode().split("\n", 2)
            parsed = json.loads(data[len("data: ") :])
            assert head == "event: " + parsed["type"] and blank == "\n"
            EVENTS.validate_python(parsed)
            out.append(parsed)
    return out


def test_stream_text_only() -> None:
    events = run(new_stream(), chunk("Hello"), chunk(" world"), final({"content": ""}))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == [] and events[0]["response"]["usage"] is None
    assert [e["delta"] for e in events if e["type"].endswith(".delta")] == ["Hello", " world"]
    assert events[6]["text"] == "Hello world"
    completed = events[-1]["response"]
    assert completed["status"] == "completed" and completed["completed_at"] == 1700000009
    assert completed["output"][0]["content"][0]["text"] == "Hello world"
    assert completed["usage"]["total_tokens"] == 15


def test_stream_reasoning_then_text() -> None:
    events = run(
        new_stream(),
        chunk(thinking="Let me "),
        chunk(thinking="think."),
        chunk("Answer"),
        final({"content": ""}),
    )
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[5]["text"] == "Let me think." and events[5]["output_index"] == 0
    assert events[7]["output_index"] == 1
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert output[0]["encrypted_content"] == "Let me think."


def test_stream_tool_calls_and_text_after_them() -> None:
    events = run(
        new_stream(),
        chunk(thinking="Need weather"),
        chunk(tool_calls=[native_call("call_1")]),
        chunk("ignored text"),
        final({"content": ""}),
    )
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        # Text after a tool call is not sent, as in Ollama.
        "response.completed",
    ]
    added, item = events[6]["item"], events[9]["item"]
    assert added["status"] == "in_progress" and added["arguments"] == ""
    assert item["status"] == "completed" and item["arguments"] == '{"city":"Paris"}'
    assert events[8]["arguments"] == '{"city":"Paris"}' and events[8]["output_index"] == 1
    output = events[-1]["response"]["output"]
    assert [i["type"] for i in output] == ["reasoning", "function_call"]


def test_stream_web_search_ends_in_a_failed_response() -> None:
    call = native_call("call_s", "web_search", query="capital of France")
    events = run(
        new_stream(tools=[SEARCH, WEATHER_TOOL]),
        chunk("Let me look."),
        chunk(tool_calls=[call, native_call("call_1")]),
        final({"content": ""}),
    )
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        # The client's own call in the same answer goes out as usual.
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        # The search, begun and failed, then the response.
        "response.output_item.added",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.output_item.done",
        "response.failed",
    ]
    search = events[-2]["item"]
    assert search == {
        "id": "ws_1_1",
        "type": "web_search_call",
        "status": "failed",
        "action": {"type": "search", "query": "capital of France"},
    }
    response = Response.model_validate(events[-1]["response"])
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "server_error"
    assert response.error.message.startswith("web search is unavailable")
    assert [item.type for item in response.output] == [
        "function_call",
        "message",
        "web_search_call",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_stream_error_event() -> None:
    stream = new_stream()
    run(stream, chunk("a"))
    (event,) = run(stream, {"error": "the runner died"})
    assert event == {
        "type": "error",
        "sequence_number": 5,
        "code": None,
        "message": "the runner died",
        "param": None,
    }


def test_a_stream_accumulates_to_the_response_object() -> None:
    """The official client's own stream helper, fed our events through a mock transport, ends
    with what the non-streaming reply says."""
    natives = [chunk(thinking="Hmm."), chunk("Hello"), chunk(" there"), final({"content": ""})]
    stream = new_stream()
    sse = b"".join(raw for native in natives for raw in stream.events(native, completed=5))

    def answer(request: Any) -> Any:
        return httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = openai.OpenAI(base_url="http://test/v1", api_key="x", http_client=http)
    with client.responses.stream(model="gpt-oss:20b", input="Hello") as events:
        streamed = events.get_final_response()
    assert streamed.output_text == "Hello there"
    assert [item.type for item in streamed.output] == ["reasoning", "message"]
    assert streamed.usage is not None and streamed.usage.total_tokens == 15


def test_client_function_call_round_trip_through_the_translation() -> None:
    """The official client's whole tool loop against the translation (a mock transport runs
    `responses_request` and `response_object` where the server would run the model): its
    function_call item comes from a scripted native tool call, and the output items it sends
    back, with the function's result, reach the native chat as the call and its result."""
    seen: list[dict[str, Any]] = []

    def answer(request: Any) -> Any:
        native, options = orr.responses_request(json.loads(request.content))
        seen.append(native)
        if len(seen) == 1:
            reply = final(
                {"content": "", "thinking": "Need it.", "tool_calls": [native_call("call_1")]}
            )
        else:
            reply = final({"content": "Sunny in Paris."})
        out = orr.response_object(
            reply, options.request, id=f"resp_{len(seen)}", item="msg_1", created=1, completed=2
        )
        return httpx2.Response(200, json=out)

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    client = openai.OpenAI(base_url="http://test/v1", api_key="x", http_client=http)
    tools: Any = [WEATHER_TOOL]
    first = client.responses.create(model="m", input="Weather in Paris?", tools=tools)
    reasoning, function_call = first.output
    assert reasoning.type == "reasoning" and function_call.type == "function_call"
    assert json.loads(function_call.arguments) == {"city": "Paris"}
    result: Any = {
        "type": "function_call_output",
        "call_id": function_call.call_id,
        "output": "Sunny",
    }
    items: Any = [{"role": "user", "content": "Weather in Paris?"}, *first.output, result]
    second = client.responses.create(model="m", input=items, tools=tools)
    assert second.output_text == "Sunny in Paris."
    assert seen[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [native_call("call_1")],
            "thinking": "Need it.",
        },
        {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"},
    ]
    assert seen[1]["tools"][0]["function"]["name"] == "get_weather"


# --- the real server and model, through the official client ---------------------------------------

MODEL = "smollm2:135m"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def url(real_server: ServerProcess) -> str:
    return add_tools_model(real_server)


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[openai.OpenAI]:
    # Closed before the server stops: an idle kept-alive connection holds its shutdown.
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.mark.slow
def test_client_responses_create(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input=QUESTION, temperature=0, max_output_tokens=30)
    assert r.object == "response" and r.status == "completed" and r.model == MODEL
    assert "Paris" in r.output_text
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.previous_response_id is None
    # Instructions and items; `previous_response_id` is accepted and ignored (nothing is
    # stored), as Ollama answers it.
    again = client.responses.create(
        model=MODEL,
        temperature=0,
        max_output_tokens=30,
        previous_response_id=r.id,
        instructions="You are a geography teacher.",
        input=[{"role": "user", "content": QUESTION}],
    )
    assert again.instructions == "You are a geography teacher." and again.output_text
    assert again.previous_response_id is None


@pytest.mark.slow
def test_client_responses_stream(client: openai.OpenAI) -> None:
    whole = client.responses.create(
        model=MODEL, input=QUESTION, temperature=0, max_output_tokens=30
    )
    events = list(
        client.responses.create(
            model=MODEL, input=QUESTION, temperature=0, max_output_tokens=30, stream=True
        )
    )
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == whole.output_text
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == whole.output_text and completed.status == "completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))


@pytest.mark.slow
def test_client_responses_json_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    r = client.responses.create(
        model=MODEL,
        input="The capital of France, as JSON.",
        temperature=0,
        max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    answer = json.loads(r.output_text)
    assert set(answer) == {"city"} and isinstance(answer["city"], str)
    assert r.text is not None and r.text.format.type == "json_schema"


@pytest.mark.slow
def test_client_function_call_history(client: openai.OpenAI) -> None:
    """A function call and its output go back to the real model, which answers from them.
    (A function_call item from the model's own output needs the chat path to parse tool
    calls: see the unit tests above.)"""
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    items: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 22 degrees"},
    ]
    r = client.responses.create(
        model=TOOLS_MODEL, input=items, tools=[tool], temperature=0, max_output_tokens=30
    )
    assert r.status == "completed" and r.output[0].type == "message"
    assert r.usage is not None and r.usage.input_tokens > 25
    assert r.tools[0].name == "get_weather"  # type: ignore[union-attr]


@pytest.mark.slow
def test_client_errors(client: openai.OpenAI, url: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="no-such-model", input="x")
    assert info.value.body == {
        "message": "model 'no-such-model' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=MODEL, input=[{"type": "bogus"}])  # type: ignore[list-item]
    assert bad.value.body == {
        "message": 'input[0]: unknown input item type: "bogus"',
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    for raw in (b"", b"{", b"[]", b'{"input": 5}', b'{"reasoning": {"effort": "x"}}'):
        r = httpx.post(url + "/v1/responses", content=raw, timeout=30)
        assert r.status_code == 400, raw
        assert r.json()["error"]["type"] == "invalid_request_error"
    # The server keeps serving.
    assert client.responses.create(model=MODEL, input="Hi", max_output_tokens=2).output


# --- failures inside the server (in process, the fake engine) ------------------------------------


async def test_a_failure_after_output_is_a_last_error_event(server: Server) -> None:
    server.engines.config = FakeConfig(crash_after_tokens=3)
    request = {"model": "tiny", "input": "hi", "stream": True}
    r = await post(server, "/v1/responses", request)
    assert r.status_code == 200 and r.content_type == "text/event-stream"
    events = (await r.get_data()).decode().split("\n\n")
    assert events[0].startswith("event: response.created\n")
    head, data = events[-2].split("\n")
    assert head == "event: error"
    error = json.loads(data[len("data: ") :])
    assert error["message"] == "runner process exited" and error["type"] == "error"
    EVENTS.validate_python(error)
    # Without a stream, the failure is the whole answer, in the OpenAI layer's shape.
    r = await post(server, "/v1/responses", {**request, "stream": False})
    assert r.status_code == 500
    assert (await r.get_json())["error"]["message"] == "runner process exited"
