"""Go's `encoding/json` encoding of a struct declared with `go_field`s (`decode.py`): the one
encoder of the structs Ollama's clients read, where key order and absent keys are part of the
protocol.

A declared struct is written field by field in declaration order, under each field's JSON name;
a field marked `omitempty` is left out when it holds its Go type's empty value (Go's rule: false,
0, "", an empty slice or map, and nil; a pointer or an `any` only when nil; a struct never).
Inside, values are written as Go writes them: a declared struct as one, a value with its own
`go_json` as that says, bytes as base64 (`[]byte`), tuples as arrays. A dict is written in its
own order, as the client sent it; Go sorts a map's keys, so a field whose value must be written
sorted says how with `go_field(encode=...)`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from trio_ollama.gocompat.decode import GoType, wires
from trio_ollama.gocompat.template.nodes import GoJSONMarshaler

__all__ = ["GoStruct", "is_empty", "marshal", "marshal_struct"]


def is_empty(go: GoType, value: Any) -> bool:
    """Whether `omitempty` leaves out `value` of Go type `go` (Go's `isEmptyValue`)."""
    if value is None:
        return True
    if go.pointer or go.kind in ("any", "struct"):
        return False
    return not value


def marshal_struct(obj: Any) -> dict[str, Any]:
    """JSON-ready data for an attrs instance whose fields are `go_field`s, as Go writes the struct
    (fields that are not `go_field`s are not part of it)."""
    out: dict[str, Any] = {}
    for name, wire in wires(type(obj)):
        value = getattr(obj, name)
        if wire.omitempty and is_empty(wire.go, value):
            continue
        out[wire.json or name] = marshal(value) if wire.encode is None else wire.encode(value)
    return out


def marshal(value: Any) -> Any:
    """JSON-ready data for `value` as Go writes it; dicts keep their order (`gojson.dumps` then
    writes the text)."""
    if isinstance(value, GoJSONMarshaler):
        return value.go_json()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, list | tuple):
        return [marshal(v) for v in value]
    if isinstance(value, Mapping):
        return {k: marshal(v) for k, v in value.items()}
    return value


class GoStruct:
    """A declared struct's `go_json` (what `marshal`, `gojson.dumps` and the template functions
    call): its encoding by `marshal_struct`."""

    __slots__ = ()

    def go_json(self) -> dict[str, Any]:
        return marshal_struct(self)
