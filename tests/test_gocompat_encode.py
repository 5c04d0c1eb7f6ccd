"""Go's JSON encoding of declared structs: the bytes Ollama's clients read, pinned type by type
(key order, which keys are absent), so that how they are produced may change but not what."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest

from trio_ollama.api import openai_responses as responses
from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.decode import (
    ANY,
    BOOL,
    FLOAT64,
    INT,
    MAP_ANY,
    STRING,
    go_field,
    pointer_to,
    slice_of,
    struct_type,
)
from trio_ollama.gocompat.encode import GoStruct, is_empty, marshal, marshal_struct
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
    (
        "tool call",
        ToolCall(function=_FN, id="call_1"),
        '{"id":"call_1","function":' + _FN_JSON + "}",
    ),
    (
        "tool call, empty",
        ToolCall(function=ToolCallFunction(name="")),
        '{"function":{"index":0,"name":"","arguments":{}}}',
    ),
    (
        "message",
        Message(
            role="assistant",
            content="c",
            thinking="t",
            images=(b"\x00\xff<",),
            tool_calls=(ToolCall(function=_FN, id="x"),),
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
        # Not a function tool: the echo has a namespace's own fields (OpenAI's NamespaceTool).
        '{"type":"namespace","name":"ns","description":"d",'
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
    return gojson.dumps(value.go_json())


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


# --- the encoder itself ---------------------------------------------------------------------------


@attrs.frozen
class _Inner(GoStruct):
    GO_NAME: ClassVar[str] = "test.Inner"

    n: int = go_field(INT, default=0, omitempty=True)
    s: str = go_field(STRING, default="")


@attrs.frozen
class _Outer(GoStruct):
    GO_NAME: ClassVar[str] = "test.Outer"

    # Declared in an order that is not the alphabet's: the order written is this one.
    zed: str = go_field(STRING, default="", omitempty=True)
    flag: bool = go_field(BOOL, default=False, omitempty=True)
    count: int = go_field(INT, default=0, omitempty=True)
    ratio: float = go_field(FLOAT64, default=0.0, omitempty=True)
    items: tuple[str, ...] = go_field(slice_of(STRING), default=(), omitempty=True)
    table: dict[str, Any] = go_field(MAP_ANY, factory=dict, omitempty=True)
    renamed: str = go_field(STRING, default="", json="$Renamed")
    inner: _Inner = go_field(struct_type(_Inner), factory=_Inner, omitempty=True)
    inners: tuple[_Inner, ...] = go_field(slice_of(struct_type(_Inner)), default=())
    maybe: _Inner | None = go_field(pointer_to(struct_type(_Inner)), default=None, omitempty=True)
    anything: Any = go_field(ANY, default=None, omitempty=True)
    strict: bool | None = go_field(pointer_to(BOOL), default=None, omitempty=True)
    blob: bytes = go_field(slice_of(INT), default=b"", omitempty=True)
    upper: str = go_field(STRING, default="", omitempty=True, encode=str.upper)
    not_go: str = "never written"


def test_fields_in_declaration_order_under_their_json_names() -> None:
    outer = _Outer(
        zed="z", flag=True, count=-1, ratio=0.5, items=("a",), table={"b": 1, "a": (2,)},
        renamed="r", inner=_Inner(1, "x"), inners=(_Inner(), _Inner(2, "y")),
        maybe=_Inner(), anything=0, strict=False, blob=b"\x01", upper="u",
    )  # fmt: skip
    data = marshal_struct(outer)
    assert data == outer.go_json() == marshal(outer)
    assert list(data) == [
        "zed", "flag", "count", "ratio", "items", "table", "$Renamed", "inner", "inners",
        "maybe", "anything", "strict", "blob", "upper",
    ]  # fmt: skip
    assert gojson.dumps(data) == (
        '{"zed":"z","flag":true,"count":-1,"ratio":0.5,"items":["a"],"table":{"b":1,"a":[2]},'
        '"$Renamed":"r","inner":{"n":1,"s":"x"},"inners":[{"s":""},{"n":2,"s":"y"}],'
        '"maybe":{"s":""},"anything":0,"strict":false,"blob":"AQ==","upper":"U"}'
    )


def test_omitempty_leaves_out_go_empty_values_only() -> None:
    # false, 0, 0.0, "", an empty slice or map, nil: left out. A struct is never empty, and
    # neither is an `any` or a pointer that is not nil (whatever it holds).
    assert marshal_struct(_Outer()) == {"$Renamed": "", "inner": {"s": ""}, "inners": []}
    assert marshal_struct(_Outer(anything="", strict=False, maybe=_Inner())) == {
        "$Renamed": "", "inner": {"s": ""}, "inners": [], "maybe": {"s": ""}, "anything": "",
        "strict": False,
    }  # fmt: skip
    # Without omitempty, a zero value and nil are written (nil as null).
    assert marshal_struct(_Inner()) == {"s": ""}
    assert gojson.dumps(marshal_struct(responses.Tool(name="t"))) == (
        '{"type":"","name":"t","description":null,"strict":null,"parameters":null}'
    )


@pytest.mark.parametrize(
    ("go", "value", "empty"),
    [
        (BOOL, False, True), (BOOL, True, False),
        (INT, 0, True), (INT, 7, False), (FLOAT64, 0.0, True), (FLOAT64, -0.5, False),
        (STRING, "", True), (STRING, " ", False),
        (slice_of(STRING), (), True), (slice_of(STRING), [], True), (slice_of(STRING), [""], False),
        (MAP_ANY, {}, True), (MAP_ANY, {"": None}, False), (slice_of(INT), b"", True),
        (STRING, None, True), (MAP_ANY, None, True),
        (ANY, None, True), (ANY, 0, False), (ANY, "", False), (ANY, {}, False), (ANY, [], False),
        (pointer_to(BOOL), None, True), (pointer_to(BOOL), False, False),
        (pointer_to(MAP_ANY), {}, False), (pointer_to(STRING), "", False),
        (struct_type(_Inner), _Inner(), False), (struct_type(_Inner), None, True),
    ],
)  # fmt: skip
def test_is_empty_is_gos_rule(go: Any, value: Any, empty: bool) -> None:
    assert is_empty(go, value) is empty


def test_values_inside_are_written_as_go_writes_them() -> None:
    # Dicts keep their order (a field whose map Go sorts says so itself, as the tool types do),
    # tuples are arrays, bytes are base64, a value with its own `go_json` is written by it.
    assert marshal({"b": (1, b"\xff"), "a": [_Inner(3, "q")]}) == {
        "b": [1, "/w=="],
        "a": [{"n": 3, "s": "q"}],
    }
    assert marshal(ToolProperties({"b": ToolProperty(), "a": ToolProperty(type="x")})) == {
        "a": {"type": "x"}, "b": {}
    }  # fmt: skip
    assert marshal(None) is None and marshal("s") == "s" and marshal(1.5) == 1.5
