from __future__ import annotations

import base64
import logging
import math
from typing import Any

import pytest

from trio_ollama.api.errors import APIError
from trio_ollama.api.schemas import (
    ChatRequest,
    CopyRequest,
    CreateJSON,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    PullRequest,
    PushRequest,
    ShowRequest,
    decode_request,
    go_quote,
    parse_body,
    parse_format,
    parse_keep_alive,
    parse_options,
    parse_think,
)
from trio_ollama.store.modelfile import CreateRequest
from trio_ollama.templates import Message, ToolCall, ToolCallFunction

DIGEST = "sha256:" + "ab" * 32
PNG = b"\x89PNG\r\n\x1a\nfake"
PNG_B64 = base64.b64encode(PNG).decode()
GO = "json: cannot unmarshal "
FORMAT_TAIL = '; expected "json" or a valid JSON Schema object'

# (id, class, body, expected): `body` is a dict for `from_json` or bytes for `decode_request`;
# `expected` is ("=", exact text) for Ollama's own texts, or a substring naming the field.
BAD: list[tuple[str, type[Any], dict[str, Any] | bytes, str | tuple[str, str]]] = [
    # --- the body
    ("empty body", GenerateRequest, b"", ("=", "missing request body")),
    ("whitespace body", ChatRequest, b" \r\n\t", ("=", "missing request body")),
    (
        "array body",
        GenerateRequest,
        b"[1]",
        ("=", "json: cannot unmarshal array into Go value of type api.GenerateRequest"),
    ),
    ("string body", ChatRequest, b'"hi"', "api.ChatRequest"),
    ("truncated JSON", ChatRequest, b'{"model": "m"', "line 1 column 14"),
    ("trailing data", ChatRequest, b'{"model": "m"} x', "Extra data"),
    ("NaN literal", GenerateRequest, b'{"options": {"temperature": NaN}}', "NaN"),
    ("huge number", GenerateRequest, b'{"options": {"top_p": 1e400}}', "1e400"),
    # --- generate: wrong types
    ("model number", GenerateRequest, {"model": 5}, "GenerateRequest.model"),
    (
        "prompt number",
        GenerateRequest,
        {"prompt": 5},
        (
            "=",
            "json: cannot unmarshal number into Go struct field GenerateRequest.prompt"
            " of type string",
        ),
    ),
    ("suffix list", GenerateRequest, {"suffix": []}, "GenerateRequest.suffix"),
    ("system object", GenerateRequest, {"system": {}}, "GenerateRequest.system"),
    ("stream string", GenerateRequest, {"stream": "yes"}, "GenerateRequest.stream"),
    ("raw number", GenerateRequest, {"raw": 1}, "GenerateRequest.raw"),
    ("truncate string", GenerateRequest, {"truncate": "no"}, "GenerateRequest.truncate"),
    ("shift number", GenerateRequest, {"shift": 0}, "GenerateRequest.shift"),
    ("debug string", GenerateRequest, {"_debug_render_only": "x"}, "_debug_render_only"),
    ("context string", GenerateRequest, {"context": "abc"}, "GenerateRequest.context"),
    (
        "context float",
        GenerateRequest,
        {"context": [1, 1.5]},
        ("=", GO + "number 1.5 into Go struct field GenerateRequest.context of type int"),
    ),
    ("context negative", GenerateRequest, {"context": [-3]}, "context[0]"),
    # --- options
    ("options list", GenerateRequest, {"options": []}, "GenerateRequest.options"),
    ("num_ctx -5", GenerateRequest, {"options": {"num_ctx": -5}}, '"num_ctx" must be >= 0'),
    (
        "temperature hot",
        GenerateRequest,
        {"options": {"temperature": "hot"}},
        ("=", 'option "temperature" must be of type float32'),
    ),
    (
        "num_ctx string",
        ChatRequest,
        {"options": {"num_ctx": "4096"}},
        ("=", 'option "num_ctx" must be of type integer'),
    ),
    ("num_ctx bool", ChatRequest, {"options": {"num_ctx": True}}, '"num_ctx"'),
    ("num_ctx huge", ChatRequest, {"options": {"num_ctx": 1e12}}, '"num_ctx" must be <='),
    ("temperature NaN", ChatRequest, {"options": {"temperature": math.nan}}, '"temperature"'),
    ("top_p inf", ChatRequest, {"options": {"top_p": math.inf}}, '"top_p"'),
    ("top_p 1.5", GenerateRequest, {"options": {"top_p": 1.5}}, '"top_p" must be between 0'),
    ("min_p negative", GenerateRequest, {"options": {"min_p": -0.1}}, '"min_p"'),
    ("typical_p 2", GenerateRequest, {"options": {"typical_p": 2}}, '"typical_p"'),
    ("temperature -1", GenerateRequest, {"options": {"temperature": -1}}, '"temperature"'),
    ("num_batch 0", GenerateRequest, {"options": {"num_batch": 0}}, '"num_batch" must be >= 1'),
    ("num_gpu -2", GenerateRequest, {"options": {"num_gpu": -2}}, '"num_gpu" must be >= -1'),
    ("main_gpu -1", GenerateRequest, {"options": {"main_gpu": -1}}, '"main_gpu" must be >= 0'),
    ("num_thread -1", GenerateRequest, {"options": {"num_thread": -1}}, '"num_thread"'),
    ("num_keep -2", GenerateRequest, {"options": {"num_keep": -2}}, '"num_keep"'),
    ("num_predict -3", GenerateRequest, {"options": {"num_predict": -3}}, '"num_predict"'),
    ("top_k -1", GenerateRequest, {"options": {"top_k": -1}}, '"top_k" must be >= 0'),
    ("repeat_last_n -2", GenerateRequest, {"options": {"repeat_last_n": -2}}, '"repeat_last_n"'),
    ("penalty huge", GenerateRequest, {"options": {"repeat_penalty": 1e39}}, '"repeat_penalty"'),
    ("penalty string", ChatRequest, {"options": {"frequency_penalty": "x"}}, "frequency_penalty"),
    ("seed bool", GenerateRequest, {"options": {"seed": True}}, '"seed"'),
    ("seed too big", GenerateRequest, {"options": {"seed": 2**70}}, '"seed"'),
    (
        "stop number",
        GenerateRequest,
        {"options": {"stop": 5}},
        ("=", 'option "stop" must be of type array'),
    ),
    (
        "stop numbers",
        GenerateRequest,
        {"options": {"stop": ["a", 1]}},
        ("=", 'option "stop" must be of an array of strings'),
    ),
    ("use_mmap string", GenerateRequest, {"options": {"use_mmap": "yes"}}, '"use_mmap"'),
    # --- keep_alive
    (
        "keep_alive no unit",
        GenerateRequest,
        {"keep_alive": "10"},
        ("=", 'time: missing unit in duration "10"'),
    ),
    (
        "keep_alive words",
        ChatRequest,
        {"keep_alive": "5 minutes"},
        ("=", 'time: unknown unit " minutes" in duration "5 minutes"'),
    ),
    ("keep_alive bool", GenerateRequest, {"keep_alive": True}, ("=", "Unsupported type: 'bool'")),
    (
        "keep_alive list",
        EmbedRequest,
        {"keep_alive": [5]},
        ("=", "Unsupported type: '[]interface {}'"),
    ),
    (
        "keep_alive object",
        EmbeddingsRequest,
        {"keep_alive": {}},
        ("=", "Unsupported type: 'map[string]interface {}'"),
    ),
    # --- format
    (
        "format xml",
        GenerateRequest,
        {"format": "xml"},
        ("=", f'invalid format: "\\"xml\\""{FORMAT_TAIL}'),
    ),
    ("format number", ChatRequest, {"format": 5}, ("=", f'invalid format: "5"{FORMAT_TAIL}')),
    ("format list", ChatRequest, {"format": ["json"]}, "invalid format"),
    # --- think
    (
        "think other level",
        GenerateRequest,
        {"think": "xhigh"},
        (
            "=",
            'invalid think value: "xhigh" (must be "high", "medium", "low", "max", true, or false)',
        ),
    ),
    ("think upper", ChatRequest, {"think": "HIGH"}, 'invalid think value: "HIGH"'),
    (
        "think number",
        ChatRequest,
        {"think": 1},
        (
            "=",
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        ),
    ),
    # --- images
    ("images string", GenerateRequest, {"images": "abc"}, "GenerateRequest.images"),
    (
        "images number",
        GenerateRequest,
        {"images": [5]},
        ("=", GO + "number into Go struct field GenerateRequest.images of type api.ImageData"),
    ),
    ("image not base64", GenerateRequest, {"images": ["not base64!"]}, "images[0]"),
    ("image bad padding", GenerateRequest, {"images": [PNG_B64, "QQ="]}, "images[1]"),
    ("image empty", GenerateRequest, {"images": [""]}, "images[0]"),
    # --- chat messages and tools
    ("messages object", ChatRequest, {"messages": {}}, "ChatRequest.messages"),
    (
        "message string",
        ChatRequest,
        {"messages": ["hi"]},
        ("=", GO + "string into Go struct field ChatRequest.messages of type api.Message"),
    ),
    (
        "role bot",
        ChatRequest,
        {"messages": [{"role": "user"}, {"role": "bot", "content": "x"}]},
        "messages[1].role",
    ),
    ("role missing", ChatRequest, {"messages": [{"content": "x"}]}, "messages[0].role"),
    (
        "role number",
        ChatRequest,
        {"messages": [{"role": 5}]},
        # Go names the innermost struct and the whole path from the body, without indexes.
        ("=", GO + "number into Go struct field Message.messages.role of type string"),
    ),
    (
        "content parts",
        ChatRequest,
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "Message.messages.content of type string",
    ),
    (
        "message image",
        ChatRequest,
        {"messages": [{"role": "user"}, {"role": "user", "images": ["@@"]}]},
        "messages[1].images[0]",
    ),
    (
        "tool_calls string",
        ChatRequest,
        {"messages": [{"role": "assistant", "tool_calls": "x"}]},
        "Message.messages.tool_calls of type []api.ToolCall",
    ),
    (
        "tool arguments string",
        ChatRequest,
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]},
        (
            "=",
            GO + "string into Go struct field ToolCallFunction.messages.tool_calls.function"
            ".arguments of type api.ToolCallFunctionArguments",
        ),
    ),
    (
        "tool name number",
        ChatRequest,
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": 5}}]}]},
        "ToolCallFunction.messages.tool_calls.function.name of type string",
    ),
    (
        "tool index string",
        ChatRequest,
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"index": "0"}}]}]},
        "ToolCallFunction.messages.tool_calls.function.index of type int",
    ),
    (
        "tool_name number",
        ChatRequest,
        {"messages": [{"role": "tool", "tool_name": 1}]},
        "tool_name",
    ),
    ("tools object", ChatRequest, {"tools": {}}, "ChatRequest.tools"),
    ("tool string", ChatRequest, {"tools": ["x"]}, "ChatRequest.tools of type api.Tool"),
    (
        "tool parameters list",
        ChatRequest,
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
        "ToolFunction.tools.function.parameters of type api.ToolFunctionParameters",
    ),
    # --- embed
    ("input number", EmbedRequest, {"input": 5}, ("=", "invalid input type")),
    ("input numbers", EmbedRequest, {"input": ["a", 2]}, ("=", "invalid input type")),
    ("input object", EmbedRequest, {"input": {"a": "b"}}, ("=", "invalid input type")),
    ("dimensions -1", EmbedRequest, {"dimensions": -1}, "dimensions"),
    ("dimensions float", EmbedRequest, {"dimensions": 1.5}, "EmbedRequest.dimensions"),
    ("embed truncate", EmbedRequest, {"truncate": "no"}, "EmbedRequest.truncate"),
    ("embed options", EmbedRequest, {"options": {"num_ctx": -1}}, '"num_ctx"'),
    ("embeddings prompt", EmbeddingsRequest, {"prompt": 1}, "EmbeddingRequest.prompt"),
    # --- show, copy, delete, pull, push
    ("show verbose", ShowRequest, {"model": "m", "verbose": "yes"}, "ShowRequest.verbose"),
    ("show name", ShowRequest, {"name": 5}, "ShowRequest.name"),
    ("show options", ShowRequest, {"options": "x"}, "ShowRequest.options"),
    ("copy source", CopyRequest, {"source": 1, "destination": "b"}, "CopyRequest.source"),
    ("copy destination", CopyRequest, {"source": "a", "destination": []}, "destination"),
    ("delete model", DeleteRequest, {"model": {}}, "DeleteRequest.model"),
    ("pull insecure", PullRequest, {"model": "m", "insecure": "yes"}, "PullRequest.insecure"),
    ("pull stream", PullRequest, {"model": "m", "stream": 0}, "PullRequest.stream"),
    ("push model", PushRequest, {"model": 5}, "PushRequest.model"),
    # --- create
    ("create files list", CreateJSON, {"files": []}, "CreateRequest.files"),
    ("create files digest type", CreateJSON, {"files": {"a.gguf": 5}}, "CreateRequest.files"),
    (
        "create files digest",
        CreateJSON,
        {"files": {"a.gguf": "sha256:abc"}},
        'invalid digest format for CreateRequest.files["a.gguf"]',
    ),
    (
        "create files parent",
        CreateJSON,
        {"files": {"../a.gguf": DIGEST}},
        ("=", "file path must be relative"),
    ),
    (
        "create adapter absolute",
        CreateJSON,
        {"adapters": {"/a.gguf": DIGEST}},
        ("=", "file path must be relative"),
    ),
    (
        "create unknown parameter",
        CreateJSON,
        {"parameters": {"foo": 1}},
        ("=", "unknown parameter 'foo'"),
    ),
    (
        "create parameter hot",
        CreateJSON,
        {"parameters": {"temperature": "hot"}},
        'parameters["temperature"]: invalid float value [hot]',
    ),
    ("create parameter list", CreateJSON, {"parameters": {"top_k": [1]}}, '"top_k"'),
    ("create parameter range", CreateJSON, {"parameters": {"num_ctx": -1}}, '"num_ctx"'),
    ("create parameters string", CreateJSON, {"parameters": "x"}, "CreateRequest.parameters"),
    (
        "create message role",
        CreateJSON,
        {"messages": [{"role": "tool", "content": "x"}]},
        ("=", 'message role must be one of "system", "user", or "assistant"'),
    ),
    (
        "create message content",
        CreateJSON,
        {"messages": [{"role": "user", "content": 1}]},
        "Message.messages.content of type string",
    ),
    ("create license number", CreateJSON, {"license": 5}, "CreateRequest.license"),
    ("create license numbers", CreateJSON, {"license": ["a", 5]}, "CreateRequest.license"),
    ("create from number", CreateJSON, {"from": 1}, "CreateRequest.from"),
    ("create quantize", CreateJSON, {"quantize": 4}, "CreateRequest.quantize"),
    ("create stream", CreateJSON, {"stream": "no"}, "CreateRequest.stream"),
]


@pytest.mark.parametrize(("cls", "body", "expected"), [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_bad_input_is_400_naming_the_field(
    cls: type[Any], body: dict[str, Any] | bytes, expected: str | tuple[str, str]
) -> None:
    with pytest.raises(APIError) as info:
        if isinstance(body, bytes):
            decode_request(cls, body)
        else:
            cls.from_json(body)
    assert info.value.status == 400
    if isinstance(expected, tuple):
        assert info.value.message == expected[1]
    else:
        assert expected in info.value.message


def test_bad_input_table_is_large_and_covers_every_class() -> None:
    assert len(BAD) >= 40
    classes = {row[1] for row in BAD}
    assert classes >= {
        GenerateRequest,
        ChatRequest,
        EmbedRequest,
        EmbeddingsRequest,
        ShowRequest,
        CopyRequest,
        DeleteRequest,
        PullRequest,
        PushRequest,
        CreateJSON,
    }


# --- keep_alive (Ollama's TestKeepAliveParsingFromJSON in `api/types_test.go`, and more)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (42, 42.0),
        (42.5, 42.5),
        (0, 0.0),
        (-0.0, 0.0),
        ("42m", 42 * 60.0),
        ("1h30m", 90 * 60.0),
        ("5m", 300.0),
        ("0", 0.0),
        ("300ms", 0.3),
        (-1, math.inf),
        (-3.14, math.inf),
        ("-1m", math.inf),
        (1e300, math.inf),
    ],
)
def test_keep_alive(value: Any, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10", 'time: missing unit in duration "10"'),
        ("", 'time: invalid duration ""'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        (True, "Unsupported type: 'bool'"),
        ([], "Unsupported type: '[]interface {}'"),
        ({"a": 1}, "Unsupported type: 'map[string]interface {}'"),
    ],
)
def test_keep_alive_errors(value: Any, message: str) -> None:
    with pytest.raises(APIError) as info:
        parse_keep_alive(value)
    assert (info.value.status, info.value.message) == (400, message)


def test_keep_alive_from_request_body() -> None:
    assert decode_request(GenerateRequest, b'{"keep_alive": "-1m"}').keep_alive == math.inf
    assert decode_request(ChatRequest, b'{"keep_alive": 0}').keep_alive == 0.0
    assert decode_request(ChatRequest, b'{"keep_alive": null}').keep_alive is None


# --- the body


def test_parse_body_null_is_empty_object() -> None:
    assert parse_body(b"null") == {}
    assert decode_request(ChatRequest, b" null ") == ChatRequest()


def test_parse_body_non_object_without_struct_names_a_map() -> None:
    with pytest.raises(APIError) as info:
        parse_body(b"[]")
    assert info.value.status == 400
    assert info.value.message == (
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    )


def test_parse_body_invalid_json_has_reason_and_position() -> None:
    with pytest.raises(APIError) as info:
        parse_body(b'{"model": }')
    assert info.value.status == 400
    assert info.value.message.startswith("invalid JSON: Expecting value")
    assert "line 1 column 11 (char 10)" in info.value.message


def test_parse_body_is_lenient_about_text_like_go() -> None:
    # Invalid UTF-8 and lone surrogates become U+FFFD, as Go's decoder does.
    assert parse_body(b'{"prompt": "a\xffb"}') == {"prompt": "a\ufffdb"}
    assert parse_body(b'{"prompt": "x\\ud800y"}') == {"prompt": "x\ufffdy"}
    assert parse_body('{"prompt": "h\\u00e9 \U0001f600"}'.encode()) == {"prompt": "hé 😀"}


def test_parse_body_deep_nesting_is_400() -> None:
    with pytest.raises(APIError) as info:
        parse_body(b"[" * 100_000 + b"]" * 100_000)
    assert info.value.status == 400


def test_unknown_fields_are_ignored() -> None:
    req = decode_request(GenerateRequest, b'{"model": "m", "username": "x", "logprobs": true}')
    assert req.model == "m"


# --- options


def test_options_ignore_unknown_and_deprecated(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trio_ollama.api.schemas"):
        opts = parse_options({"foo": 1, "mirostat": 2, "numa": True, "num_ctx": 2048})
    assert opts == {"num_ctx": 2048}
    assert "invalid option provided: foo" in caplog.text
    assert "mirostat" not in caplog.text


def test_options_convert_like_ollama() -> None:
    opts = parse_options(
        {
            "num_ctx": 2048.9,  # JSON floats for int options are truncated
            "num_predict": -1.5,
            "temperature": 0,  # an int for a float option is fine
            "stop": "###",  # one string becomes a list
            "seed": -(2**40),
            "presence_penalty": -1.5,
            "use_mmap": False,
            "top_p": None,  # null is "not given"
        }
    )
    assert opts == {
        "num_ctx": 2048,
        "num_predict": -1,
        "temperature": 0.0,
        "stop": ["###"],
        "seed": -(2**40),
        "presence_penalty": -1.5,
        "use_mmap": False,
    }
    assert type(opts["temperature"]) is float
    assert GenerateRequest.from_json({"options": None}).options == {}
    assert parse_options({"stop": ["a", "b"], "top_p": 1, "min_p": 0}) == {
        "stop": ["a", "b"],
        "top_p": 1.0,
        "min_p": 0.0,
    }


def test_options_field_name_in_message() -> None:
    with pytest.raises(APIError) as info:
        ShowRequest.from_json({"options": "x"})
    assert info.value.message == (
        "json: cannot unmarshal string into Go struct field ShowRequest.options"
        " of type map[string]interface {}"
    )


# --- format and think


@pytest.mark.parametrize(
    ("value", "result"),
    [
        (None, ""),
        ("", ""),
        ("json", "json"),
        ({"type": "object"}, '{"type":"object"}'),
        (
            {"type": "object", "properties": {"é": {"type": "string"}}},
            '{"type":"object","properties":{"é":{"type":"string"}}}',
        ),
        ({}, "{}"),
    ],
)
def test_format(value: Any, result: str) -> None:
    assert parse_format(value) == result


def test_think_values() -> None:
    assert parse_think(None) is None
    assert parse_think(True) is True
    assert parse_think(False) is False
    for level in ("high", "medium", "low", "max"):
        assert parse_think(level) == level


def test_go_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("x\ny\x01\x7f") == '"x\\ny\\x01\\x7f"'
    assert go_quote("é😀") == '"é😀"'


# --- defaults and happy paths


def test_generate_defaults() -> None:
    req = GenerateRequest.from_json({})
    assert req == GenerateRequest()
    assert req.stream is True and req.truncate is True and req.shift is True
    assert req.raw is False and req.debug_render_only is False
    assert req.system is None and req.template is None and req.context is None
    assert req.keep_alive is None and req.think is None and req.format == ""
    assert req.images == () and req.options == {}


def test_generate_happy_path() -> None:
    body = (
        b'{"model": "llama3.2", "prompt": "Why?", "suffix": "end", "system": "Be brief",'
        b' "template": "{{ .Prompt }}", "context": [1, 2, 3], "stream": false, "raw": true,'
        b' "format": {"type": "object"}, "keep_alive": "10m", "images": ["'
        + PNG_B64.encode()
        + b'"], "options": {"temperature": 0.2, "num_ctx": 8192}, "think": "low",'
        b' "truncate": false, "shift": false, "_debug_render_only": true}'
    )
    req = decode_request(GenerateRequest, body)
    assert req == GenerateRequest(
        model="llama3.2",
        prompt="Why?",
        suffix="end",
        system="Be brief",
        template="{{ .Prompt }}",
        context=(1, 2, 3),
        stream=False,
        raw=True,
        format='{"type":"object"}',
        keep_alive=600.0,
        images=(PNG,),
        options={"temperature": 0.2, "num_ctx": 8192},
        think="low",
        truncate=False,
        shift=False,
        debug_render_only=True,
    )


def test_generate_empty_overrides_count_as_unset() -> None:
    req = GenerateRequest.from_json({"system": "", "template": "", "context": []})
    assert req.system is None and req.template is None
    # An explicit empty context still differs from none: Ollama then skips Modelfile messages.
    assert req.context == ()


def test_images_accept_line_breaks() -> None:
    wrapped = PNG_B64[:4] + "\r\n" + PNG_B64[4:]
    assert GenerateRequest.from_json({"images": [wrapped]}).images == (PNG,)


def test_chat_defaults() -> None:
    req = ChatRequest.from_json({"model": "m"})
    assert req == ChatRequest(model="m")
    assert req.stream is True and req.truncate is True and req.shift is True
    assert req.messages == () and req.tools == () and req.think is None


def test_chat_happy_path() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            },
        },
    }
    req = ChatRequest.from_json(
        {
            "model": "m",
            "messages": [
                {"role": "SYSTEM", "content": "Be brief"},
                {"role": "user", "content": "Weather?", "images": [PNG_B64]},
                {
                    "role": "assistant",
                    "content": None,
                    "thinking": "hmm",
                    "tool_calls": [
                        {
                            "id": "call_abc12345",
                            "function": {
                                "index": 0,
                                "name": "get_weather",
                                "arguments": {"city": "Paris"},
                            },
                        }
                    ],
                },
                {"role": "tool", "content": "20C", "tool_name": "get_weather"},
            ],
            "tools": [tool],
            "format": "json",
            "keep_alive": -1,
            "think": True,
            "stream": False,
        }
    )
    assert req.messages == (
        Message(role="system", content="Be brief"),
        Message(role="user", content="Weather?", images=(PNG,)),
        Message(
            role="assistant",
            thinking="hmm",
            tool_calls=(
                ToolCall(
                    id="call_abc12345",
                    function=ToolCallFunction(name="get_weather", arguments={"city": "Paris"}),
                ),
            ),
        ),
        Message(role="tool", content="20C", tool_name="get_weather"),
    )
    assert req.tools == (tool,)
    assert req.format == "json" and req.keep_alive == math.inf
    assert req.think is True and req.stream is False
    assert req.messages[1].go_json() == {"role": "user", "content": "Weather?", "images": [PNG_B64]}
    assert req.messages[2].go_json() == {
        "role": "assistant",
        "content": "",
        "thinking": "hmm",
        "tool_calls": [
            {
                "id": "call_abc12345",
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    }
    assert req.messages[3].go_json() == {
        "role": "tool",
        "content": "20C",
        "tool_name": "get_weather",
    }


def test_tool_call_without_id_or_arguments() -> None:
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]}
    (msg,) = ChatRequest.from_json(body).messages
    assert msg.tool_calls == (ToolCall(function=ToolCallFunction(name="f")),)
    assert msg.tool_calls[0].go_json() == {"function": {"index": 0, "name": "f", "arguments": {}}}


def test_embed() -> None:
    req = EmbedRequest.from_json({"model": "e"})
    assert req == EmbedRequest(model="e")
    assert req.truncate is True and req.dimensions == 0 and req.input == ()
    assert EmbedRequest.from_json({"input": "hello"}).input == ("hello",)
    assert EmbedRequest.from_json({"input": ""}).input == ()
    assert EmbedRequest.from_json({"input": []}).input == ()
    assert EmbedRequest.from_json({"input": ["a", ""]}).input == ("a", "")
    req = EmbedRequest.from_json(
        {
            "model": "e",
            "input": ["a", "b"],
            "keep_alive": "1m",
            "truncate": False,
            "dimensions": 64,
            "options": {"num_ctx": 512},
        }
    )
    assert req == EmbedRequest(
        model="e",
        input=("a", "b"),
        keep_alive=60.0,
        truncate=False,
        dimensions=64,
        options={"num_ctx": 512},
    )


def test_embeddings_legacy() -> None:
    assert EmbeddingsRequest.from_json({}) == EmbeddingsRequest()
    req = EmbeddingsRequest.from_json(
        {"model": "e", "prompt": "hi", "keep_alive": 5, "options": {"seed": 1}}
    )
    assert req == EmbeddingsRequest(model="e", prompt="hi", keep_alive=5.0, options={"seed": 1})


def test_show() -> None:
    assert ShowRequest.from_json({}) == ShowRequest()
    assert ShowRequest.from_json({"name": "old"}).model == "old"
    assert ShowRequest.from_json({"model": "new", "name": "old"}).model == "new"
    req = ShowRequest.from_json(
        {"model": "m", "verbose": True, "system": "s", "options": {"top_k": 5}}
    )
    assert req == ShowRequest(model="m", verbose=True, system="s", options={"top_k": 5})


def test_copy_delete_pull_push() -> None:
    assert CopyRequest.from_json({"source": "a", "destination": "b"}) == CopyRequest(
        source="a", destination="b"
    )
    assert DeleteRequest.from_json({"name": "x"}) == DeleteRequest(model="x")
    assert DeleteRequest.from_json({"model": "y", "name": "x"}) == DeleteRequest(model="y")
    assert PullRequest.from_json({"name": "x"}) == PullRequest(
        model="x", insecure=False, stream=True
    )
    assert PullRequest.from_json({"model": "x", "insecure": True, "stream": False}) == PullRequest(
        model="x", insecure=True, stream=False
    )
    assert PushRequest.from_json({"model": "u/x"}) == PushRequest(model="u/x")


def test_create_defaults() -> None:
    req = CreateJSON.from_json({"model": "m", "from": "base"})
    assert req == CreateJSON(model="m", from_="base")
    assert req.stream is True and req.messages is None and req.license == ()
    assert req.to_store_request() == CreateRequest(from_="base")


def test_create_happy_path() -> None:
    req = CreateJSON.from_json(
        {
            "name": "mine",
            "files": {"model.gguf": DIGEST, "sub/dir/proj.gguf": "sha256-" + "CD" * 32},
            "adapters": {"lora.gguf": DIGEST},
            "template": "{{ .Prompt }}",
            "system": "You are terse.",
            "license": "MIT",
            "parameters": {
                "temperature": 0.5,
                "num_ctx": "4096",  # Modelfile-style strings are converted
                "stop": "<|end|>",
                "use_mmap": "true",
                "mirostat": 1,  # deprecated: dropped
                "seed": None,
            },
            "messages": [{"role": "User", "content": "hi"}, {"role": "assistant"}],
            "quantization": "q4_K_M",
            "stream": False,
        }
    )
    assert req.model == "mine" and req.quantize == "q4_K_M" and req.stream is False
    assert req.parameters == {
        "temperature": 0.5,
        "num_ctx": 4096,
        "stop": ["<|end|>"],
        "use_mmap": True,
    }
    assert req.to_store_request() == CreateRequest(
        from_="",
        files={"model.gguf": DIGEST, "sub/dir/proj.gguf": "sha256-" + "CD" * 32},
        adapters={"lora.gguf": DIGEST},
        template="{{ .Prompt }}",
        system="You are terse.",
        license=("MIT",),
        parameters={"temperature": 0.5, "num_ctx": 4096, "stop": ["<|end|>"], "use_mmap": True},
        messages=(Message("user", "hi"), Message("assistant", "")),
    )


def test_create_license_list_and_quantize_wins() -> None:
    req = CreateJSON.from_json(
        {"license": ["MIT", "Apache"], "quantize": "q8_0", "quantization": "q4_0"}
    )
    assert req.license == ("MIT", "Apache") and req.quantize == "q8_0"
    assert CreateJSON.from_json({"messages": []}).messages is None
    assert CreateJSON.from_json({"template": "", "system": ""}).template is None


def test_server_route_decodes_with_the_declared_go_types() -> None:
    # The route's path (bytes in) and `from_json` (a dict in) give the same Go texts.
    body = b'{"model": "m", "messages": [{"role": "user", "content": 5}]}'
    with pytest.raises(APIError) as from_bytes:
        decode_request(ChatRequest, body)
    with pytest.raises(APIError) as from_dict:
        ChatRequest.from_json({"model": "m", "messages": [{"role": "user", "content": 5}]})
    assert (
        from_bytes.value.message
        == from_dict.value.message
        == (
            "json: cannot unmarshal number into Go struct field Message.messages.content"
            " of type string"
        )
    )
