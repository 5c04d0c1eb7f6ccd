"""Go's JSON encoding of declared structs: the bytes Ollama's clients read, pinned type by type
(key order, which keys are absent), so that how they are produced may change but not what."""

from __future__ import annotations

from typing import Any

import pytest

from trio_ollama.api import openai_responses as responses
from trio_ollama.gocompat import gojson
from trio_ollama.store.manifest import Layer, Manifest
from trio_ollama.templates import (
    Message,
    PropertyType,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolFunction,
    ToolFunctionParameters,
    ToolProperties,
    ToolProperty,
)

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
MODEL = "application/vnd.ollama.image.model"
CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

_FN = ToolCallFunction(name="f", arguments={"z": 1, "a": {"y": 2, "b": 3}}, index=2)
_FN_JSON = '{"index":2,"name":"f","arguments":{"a":{"b":3,"y":2},"z":1}}'
_NO_PARAMETERS = '{"type":"object","properties":null}'

GOLDEN: list[tuple[str, Any, str]] = [
    ("tool call function", _FN, _FN_JSON),
    (
        "tool call function, empty",
        ToolCallFunction(name=""),
        '{"index":0,"name":"","arguments":{}}',
    ),
    ("tool call", ToolCall(_FN, id="call_1"), '{"id":"call_1","function":' + _FN_JSON + "}"),
    (
        "tool call, empty",
        ToolCall(ToolCallFunction(name="")),
        '{"function":{"index":0,"name":"","arguments":{}}}',
    ),
    (
        "message",
        Message(
            role="assistant",
            content="c",
            thinking="t",
            images=(b"\x00\xff<",),
            tool_calls=(ToolCall(_FN, id="x"),),
            tool_name="n",
            tool_call_id="i",
        ),
        '{"role":"assistant","content":"c","thinking":"t","images":["AP88"],'
        '"tool_calls":[{"id":"x","function":' + _FN_JSON + '}],"tool_name":"n","tool_call_id":"i"}',
    ),
    ("message, empty", Message(role=""), '{"role":"","content":""}'),
    (
        "tool property",
        ToolProperty(
            type=PropertyType(["string", "null"]),
            description="d <&>",
            enum=("a", 1, None),
            items={"type": "string", "a": [1]},
            any_of=(ToolProperty(type="integer"),),
            properties=ToolProperties({"z": ToolProperty(type="string"), "a": ToolProperty()}),
            required=("z",),
        ),
        '{"anyOf":[{"type":"integer"}],"type":["string","null"],"items":{"a":[1],"type":"string"},'
        '"description":"d \\u003c\\u0026\\u003e","enum":["a",1,null],'
        '"properties":{"a":{},"z":{"type":"string"}},"required":["z"]}',
    ),
    ("tool property, empty", ToolProperty(), "{}"),
    (
        # `items` is an `any` and `properties` a pointer: only nil is empty; an empty `enum` is.
        "tool property, empty values that are not nil",
        ToolProperty(items={}, enum=(), properties=ToolProperties()),
        '{"items":{},"properties":{}}',
    ),
    (
        "tool parameters",
        ToolFunctionParameters(
            type="object",
            required=("b",),
            defs={"y": 1, "x": {"q": 2, "p": 3}},
            properties={"b": ToolProperty(type="string"), "a": ToolProperty(type="number")},
            items=[1, {"b": 1, "a": 2}],
        ),
        '{"type":"object","$defs":{"x":{"p":3,"q":2},"y":1},"items":[1,{"a":2,"b":1}],'
        '"required":["b"],"properties":{"a":{"type":"number"},"b":{"type":"string"}}}',
    ),
    ("tool parameters, empty", ToolFunctionParameters(type=""), '{"type":"","properties":null}'),
    (
        "tool function",
        ToolFunction(name="f", description="d", parameters=ToolFunctionParameters(properties={})),
        '{"name":"f","description":"d","parameters":{"type":"object","properties":{}}}',
    ),
    ("tool function, empty", ToolFunction(name=""), f'{{"name":"","parameters":{_NO_PARAMETERS}}}'),
    (
        "tool",
        Tool(function=ToolFunction(name="f"), type="function", items={"b": 0, "a": False}),
        '{"type":"function","items":{"a":false,"b":0},'
        f'"function":{{"name":"f","parameters":{_NO_PARAMETERS}}}}}',
    ),
    (
        "tool, empty",
        Tool(function=ToolFunction(name=""), type=""),
        f'{{"type":"","function":{{"name":"","parameters":{_NO_PARAMETERS}}}}}',
    ),
    (
        # A `json.RawMessage` schema is written as it came, keys unsorted.
        "responses text format",
        responses.TextFormat(
            type="json_schema", name="n", schema={"b": 1, "a": {"d": 2, "c": 3}}, strict=False
        ),
        '{"type":"json_schema","name":"n","schema":{"b":1,"a":{"d":2,"c":3}},"strict":false}',
    ),
    ("responses text format, empty", responses.TextFormat(), '{"type":""}'),
    (
        "responses tool",
        responses.Tool(
            type="namespace",
            name="ns",
            description="d",
            strict=True,
            parameters={"b": 1, "a": 2},
            tools=(
                responses.Tool(
                    type="function", name="g", description="", strict=False, parameters={}
                ),
            ),
        ),
        '{"type":"namespace","name":"ns","description":"d","strict":true,"parameters":{"b":1,"a":2},'
        '"tools":[{"type":"function","name":"g","description":"","strict":false,"parameters":{}}]}',
    ),
    (
        # Nullable but required: nil is written as null, never left out.
        "responses tool, empty",
        responses.Tool(),
        '{"type":"","name":"","description":null,"strict":null,"parameters":null}',
    ),
    (
        "layer",
        Layer(MODEL, DIGEST_A, 10, "/x/y"),
        f'{{"mediaType":"{MODEL}","digest":"{DIGEST_A}","size":10,"from":"/x/y"}}',
    ),
    ("layer, empty", Layer("", "", 0), '{"mediaType":"","digest":"","size":0}'),
]


def _encoded(value: Any) -> str:
    return gojson.dumps(value.go_json() if hasattr(value, "go_json") else value.to_json())


@pytest.mark.parametrize(
    ("value", "text"), [(v, t) for _, v, t in GOLDEN], ids=[n for n, *_ in GOLDEN]
)
def test_golden_encodings(value: Any, text: str) -> None:
    assert _encoded(value) == text


def test_golden_manifests() -> None:
    manifest = Manifest(config=Layer(CONFIG, DIGEST_A, 5), layers=(Layer(MODEL, DIGEST_B, 7, "f"),))
    assert (
        manifest.to_bytes()
        == (
            f'{{"schemaVersion":2,"mediaType":"{MANIFEST}",'
            f'"config":{{"mediaType":"{CONFIG}","digest":"{DIGEST_A}","size":5}},'
            f'"layers":[{{"mediaType":"{MODEL}","digest":"{DIGEST_B}","size":7,"from":"f"}}]}}\n'
        ).encode()
    )
    empty = Manifest(config=Layer("", "", 0), layers=())
    assert (
        empty.to_bytes()
        == (
            f'{{"schemaVersion":2,"mediaType":"{MANIFEST}",'
            '"config":{"mediaType":"","digest":"","size":0},"layers":[]}\n'
        ).encode()
    )
