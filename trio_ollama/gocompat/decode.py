"""Go's `encoding/json` decoding, as far as a client can see it: which JSON each Go type accepts,
and the `UnmarshalTypeError` text for the first value that does not fit.

A request body is described once, declaratively: `go_field` puts a field's Go type (and its JSON
name, fallback name and conversion) on an attrs field, `struct_type` derives the Go struct from
the class, and `unmarshal` checks a decoded body against it (Go's first error, in document order,
naming `Struct.path.to.field`) and then builds the class from it. Semantic checks (ranges, allowed
values) belong to each field's `convert`, which raises `DecodeError` with Ollama's text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

import attrs

from trio_ollama.gocompat.template.values import type_name as template_type_name

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


class DecodeError(ValueError):
    """A request body Go would refuse (or Ollama rejects after decoding); the text is the one
    to send the client."""


@attrs.frozen
class GoType:
    """One Go type as the decoder sees it: what JSON it accepts and how its errors name it.

    `kind` is "string", "int", "float", "bool", "any", "struct", "slice" or "map". A pointer
    decodes as what it points to (and Go's errors name that); it matters to the encoder, where
    only nil is an empty pointer (`omitempty`).
    """

    kind: str
    name: str
    fields: Mapping[str, GoType] = attrs.field(factory=dict)
    elem: GoType | None = None
    pointer: bool = False

    @property
    def struct_name(self) -> str:
        # reflect's Name(): the bare name of a named type, "" for an anonymous struct.
        return "" if self.name.startswith("struct ") else self.name.rpartition(".")[2]


STRING: Final = GoType("string", "string")
INT: Final = GoType("int", "int")
FLOAT64: Final = GoType("float", "float64")
FLOAT32: Final = GoType("float", "float32")
BOOL: Final = GoType("bool", "bool")
ANY: Final = GoType("any", "interface {}")


def slice_of(elem: GoType) -> GoType:
    return GoType("slice", "[]" + elem.name, elem=elem)


def map_of(elem: GoType) -> GoType:
    return GoType("map", "map[string]" + elem.name, elem=elem)


def struct(type_name: str, /, **fields: GoType) -> GoType:
    return GoType("struct", type_name, fields=fields)


def pointer_to(elem: GoType) -> GoType:
    return attrs.evolve(elem, pointer=True)


MAP_ANY: Final = map_of(ANY)


# --- what Go names in its messages ----------------------------------------------------------------


def json_kind(value: Any) -> str:
    """The JSON kind `UnmarshalTypeError` names: string, number, bool, array, object, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def type_name(value: Any) -> str:
    """What Go's `%T` prints for a value `encoding/json` decoded into `any`: as for a template
    value, except that every JSON number is a float64."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return template_type_name(value)


def type_error(go: GoType, value: Any, struct_name: str = "", path: str = "") -> DecodeError:
    """Go's `json: cannot unmarshal <kind> into Go struct field <Struct>.<path> of type <T>`."""
    what = json_kind(value)
    if go.kind == "int" and isinstance(value, int | float) and not isinstance(value, bool):
        # Go quotes the literal when a number does not fit an integer.
        what = f"number {_number_text(value)}"
    where = f"Go struct field {struct_name}.{path}" if struct_name or path else "Go value"
    return DecodeError(f"json: cannot unmarshal {what} into {where} of type {go.name}")


def _number_text(value: int | float) -> str:
    return _shown(json.dumps(value))


# --- checking a decoded value against a Go type ---------------------------------------------------


def _accepts(go: GoType, value: Any) -> bool:
    match go.kind:
        case "string":
            return isinstance(value, str)
        case "bool":
            return isinstance(value, bool)
        case "int":
            return (
                isinstance(value, int)
                and not isinstance(value, bool)
                and INT64_MIN <= value <= INT64_MAX
            )
        case "float":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "struct" | "map":
            return isinstance(value, dict)
        case "slice":
            return isinstance(value, list)
    return True


def check(go: GoType, value: Any, struct_name: str = "", path: str = "") -> None:
    """Raise Go's error for the first value (in document order) that `go` does not accept."""
    # JSON null leaves Go's zero value in place: never an error.
    if value is None or go.kind == "any":
        return
    if not _accepts(go, value):
        raise type_error(go, value, struct_name, path)
    if go.kind == "struct":
        for key, item in value.items():
            field = go.fields.get(key)
            if field is not None:
                check(field, item, go.struct_name, f"{path}.{key}" if path else key)
    elif go.kind in ("slice", "map"):
        assert go.elem is not None
        for item in value.values() if go.kind == "map" else value:
            check(go.elem, item, struct_name, path)


# --- the body -------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _shown(text: str) -> str:
    # A client can send a 4,000-digit number; a message need not echo all of it.
    return text if len(text) <= 24 else text[:20] + "..."


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {_shown(text)} is out of range")
    return value


def _float64_int(text: str) -> int:
    # Go reads a number decoded into `any` as a float64, so an integer past its range is an
    # error; Python would read it, or refuse past 4,300 digits with a message about its own
    # settings. 310 digits is the shortest that can overflow a float64.
    if len(text) >= 310 and math.isinf(float(text)):
        raise ValueError(f"number {_shown(text)} is out of range")
    return int(text)


def _clean_strings(value: Any) -> Any:
    # JSON may carry lone UTF-16 surrogates (`"\ud800"`); Python keeps them and then fails to
    # encode the text as UTF-8 much later. Go replaces them with U+FFFD while decoding.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {_clean_strings(k): _clean_strings(v) for k, v in value.items()}
    return value


# Go's decoder stops at 10,000 levels; Python's recursion would not get that far, and every
# later walk over the value (templates, `json.dumps`) recurses too. Real requests nest a few
# levels; a JSON schema or tool parameters, a few dozen.
MAX_DEPTH = 256

# Outside a string, what the scanner stops at: a quote, a backslash or a bracket.
_search_outside = re.compile(r'["\\\[\]{}]').search


@attrs.define
class BracketScanner:
    """JSON's brackets outside strings, one at a time, in text that may arrive in pieces: the
    one scanner behind `nesting_depth` and the tool-call parser's search for objects.

    A backslash escapes the next character outside a string too, as in Ollama's scanners of
    model output (`tools.go`); in a request body a stray backslash is a syntax error that the
    JSON parser stops at, so every bracket it would recurse into before it is still counted.
    """

    in_string: bool = False
    escaped: bool = False

    def brackets(self, text: str, pos: int = 0) -> Iterator[int]:
        """Where each of `[]{}` outside a string lies in `text[pos:]`. After each, the scan is
        outside a string (a reader may stop there and go on from the next character); read to
        the end, the state is the one at the end of `text`, for the next piece of it."""
        # The state in locals while scanning (a request body may hold millions of brackets);
        # the attributes hold the state after a bracket, where a reader may stop.
        end, in_string, escaped = len(text), self.in_string, self.escaped
        self.in_string = self.escaped = False
        while pos < end:
            if escaped:
                escaped = False
                pos += 1
            elif in_string:
                # To the next quote; it ends the string unless an odd run of backslashes ends
                # what comes before it (from `pos`: nothing before it escapes anything).
                close = text.find('"', pos)
                segment = text[pos:] if close == -1 else text[pos:close]
                odd = (len(segment) - len(segment.rstrip("\\"))) % 2 == 1
                if close == -1:
                    escaped = odd  # it escapes the next piece's first character
                    break
                in_string = odd
                pos = close + 1
            else:
                match = _search_outside(text, pos)
                if match is None:
                    break
                ch = match.group()
                pos = match.end()
                if ch == '"':
                    in_string = True
                elif ch == "\\":
                    escaped = True
                else:
                    yield match.start()
        self.in_string, self.escaped = in_string, escaped


def nesting_depth(text: str, past: int | None = None) -> int:
    """How deep arrays and objects nest in JSON `text` (strings skipped), without recursion.
    Given `past`, the reading stops once deeper than that: a megabyte of `[` is read to its
    limit, not to its end."""
    depth = deepest = 0
    for i in BracketScanner().brackets(text):
        if text[i] in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if past is not None and deepest > past:
                break
        else:
            depth -= 1
    return deepest


def loads(raw: bytes) -> Any:
    """JSON bytes to Python values as Go reads them: invalid UTF-8 becomes U+FFFD, and the rest
    is `loads_text`."""
    return loads_text(raw.decode("utf-8", errors="replace"))


def loads_text(text: str) -> Any:
    """JSON text to Python values as Go reads it: lone surrogates become U+FFFD; NaN, Infinity,
    numbers past a float64's range and nesting past `MAX_DEPTH` are a `DecodeError`, whose
    text is for the client (never one of Python's own errors)."""
    # Counting the brackets is cheap, and no text nests deeper than it has brackets.
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text, MAX_DEPTH) > MAX_DEPTH:
        raise DecodeError(f"invalid JSON: exceeded max depth of {MAX_DEPTH}")
    try:
        return _clean_strings(
            json.loads(
                text,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
                parse_int=_float64_int,
            )
        )
    except json.JSONDecodeError as e:
        raise DecodeError(
            f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno} (char {e.pos})"
        ) from None
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise DecodeError(f"invalid JSON: {e}") from None


# Ollama's type for a tool call's arguments (v0.12.10: a `map[string]any`), named in its errors.
TOOL_ARGUMENTS: Final = GoType("map", "api.ToolCallFunctionArguments", elem=ANY)


def tool_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments sent as JSON text (OpenAI's `function.arguments`, a Responses
    `function_call`'s `arguments`), as Go's `json.Unmarshal` into `TOOL_ARGUMENTS` reads them:
    an object; `null` is none. Anything else is a `DecodeError` with Go's text."""
    value = loads_text(text)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise type_error(TOOL_ARGUMENTS, value)
    return value


def decode_object(raw: bytes, go: GoType) -> dict[str, Any]:
    """A body that must decode into the struct `go`: checked, `null` read as `{}`."""
    value = loads(raw)
    if value is not None and not isinstance(value, dict):
        raise DecodeError(
            f"json: cannot unmarshal {json_kind(value)} into Go value of type {go.name}"
        )
    check(go, value)
    return {} if value is None else value


# --- declarations: attrs classes as Go structs ----------------------------------------------------

Convert = Callable[[Any, str], Any]
_GO = "trio_ollama.go"


@attrs.frozen
class Wire:
    """What `go_field` says of a field, for the decoder here and the encoder (`encode.py`)."""

    go: GoType
    json: str | None
    fallback: str | None
    convert: Convert | None
    omitempty: bool
    encode: Callable[[Any], Any] | None


def go_field(
    go: GoType,
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    json: str | None = None,
    fallback: str | None = None,
    convert: Convert | None = None,
    omitempty: bool = False,
    encode: Callable[[Any], Any] | None = None,
) -> Any:
    """An attrs field that is JSON key `json` (default: the field's name) of Go type `go`.

    Decoding (`build`): `fallback` names a deprecated key read when the value is empty (`name`
    for `model`). `convert(value, path)` turns the well-typed JSON value into the field's value;
    `path` is where it sits (`ChatRequest.messages[0]`), for messages. Absent or null keeps the
    default. Encoding (`encode.marshal_struct`): `omitempty` is Go's tag option; `encode` writes
    the value where the encoder's own rules would not. A field with an attrs `converter` is an
    `attrs.field` with `metadata=go_metadata(...)` (the same words), so that type checkers see
    what its converter accepts.
    """
    metadata = go_metadata(
        go, json=json, fallback=fallback, convert=convert, omitempty=omitempty, encode=encode
    )
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


def go_metadata(
    go: GoType,
    *,
    json: str | None = None,
    fallback: str | None = None,
    convert: Convert | None = None,
    omitempty: bool = False,
    encode: Callable[[Any], Any] | None = None,
) -> dict[str, Wire]:
    """The attrs metadata `go_field` puts on its field."""
    return {_GO: Wire(go, json, fallback, convert, omitempty, encode)}


_WIRES: dict[type, tuple[tuple[str, Wire], ...]] = {}


def wires(cls: type) -> tuple[tuple[str, Wire], ...]:
    """The fields of `cls` declared with `go_field`, in declaration order, with what each says."""
    known = _WIRES.get(cls)
    if known is None:
        known = _WIRES[cls] = tuple(
            (f.name, f.metadata[_GO]) for f in attrs.fields(cls) if _GO in f.metadata
        )
    return known


_STRUCTS: dict[type, GoType] = {}


def struct_type(cls: type) -> GoType:
    """The Go struct an attrs class declares; its Go name is the class's `GO_NAME`."""
    known = _STRUCTS.get(cls)
    if known is not None:
        return known
    fields: dict[str, GoType] = {}
    for name, wire in wires(cls):
        fields[wire.json or name] = wire.go
        if wire.fallback:
            fields[wire.fallback] = wire.go
    go = GoType("struct", cls.GO_NAME, fields=fields)  # type: ignore[attr-defined]
    _STRUCTS[cls] = go
    return go


T = TypeVar("T")


def build(cls: type[T], data: Mapping[str, Any] | None, path: str) -> T:
    """An instance of `cls` from a JSON object already `check`ed against `struct_type(cls)`."""
    data = data or {}
    values: dict[str, Any] = {}
    for name, wire in wires(cls):
        key = wire.json or name
        value = data.get(key)
        if wire.fallback and not value:
            value = data.get(wire.fallback) or value
        if value is None:
            continue
        values[name] = wire.convert(value, f"{path}.{key}") if wire.convert else value
    return cls(**values)


def unmarshal(cls: type[T], data: Mapping[str, Any]) -> T:
    """Go's `json.Unmarshal` into the struct `cls` declares, then its conversions."""
    go = struct_type(cls)
    check(go, data)
    return build(cls, data, go.struct_name)
