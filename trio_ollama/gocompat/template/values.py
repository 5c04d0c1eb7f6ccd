"""Go values as templates see them: truth, `%v` printing, and JSON for Ollama's `json` function."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.template.nodes import NO_VALUE, GoJSONMarshaler, GoStringer


def is_seq(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str | bytes | bytearray)


def is_struct(v: Any) -> bool:
    return attrs.has(type(v)) or (
        hasattr(v, "__dict__") and not callable(v) and not isinstance(v, type)
    )


def is_true(v: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, slices and maps are false."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | bytes | bytearray | Mapping) or is_seq(v):
        return len(v) > 0
    return True


def type_name(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes | bytearray):
        return "[]uint8"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if is_seq(v):
        return "[]interface {}"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| and the decimal point position (Go's digs)."""
    _, digits, exp = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    point = len(digits) + exp
    if text == "0":
        point = 1
    return text, point


def format_float_shortest(f: float, upper: bool = False) -> str:
    """Go's %v / strconv.FormatFloat(f, 'g', -1, 64)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    digits, point = _float_digits(f)
    exp = point - 1
    # The shortest form switches to %e when the exponent is below -4 or at least 6 (Go uses a
    # precision of 6 for that decision), so 1e6 prints as 1e+06.
    if f != 0 and (exp < -4 or exp >= 6):
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = "E" if upper else "e"
        return f"{neg}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{neg}{digits}{'0' * (point - len(digits))}"
    return f"{neg}{digits[:point]}.{digits[point:]}"


def fmt_v(v: Any) -> str:
    """Go's `%v` of a value (what `{{ . }}` prints)."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, GoStringer):
        return v.go_string()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float_shortest(v)
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, Mapping):
        items = sorted_items(v)
        return "map[" + " ".join(f"{fmt_v(k)}:{fmt_v(x)}" for k, x in items) + "]"
    if is_seq(v):
        return "[" + " ".join(fmt_v(x) for x in v) + "]"
    if attrs.has(type(v)):
        # A class can say Go holds it by pointer, which Go prints as &{...}.
        prefix = "&" if getattr(type(v), "go_pointer", False) else ""
        fields = attrs.fields(type(v))
        return prefix + "{" + " ".join(fmt_v(getattr(v, f.name)) for f in fields) + "}"
    return str(v)


def _sort_key(k: Any) -> tuple[int, Any]:
    # Go's fmt and encoding/json sort map keys; mixed key types do not occur in Go maps.
    if isinstance(k, bool):
        return (0, k)
    if isinstance(k, int | float):
        return (1, k)
    return (2, str(k))


def sorted_items(m: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    return sorted(m.items(), key=lambda kv: _sort_key(kv[0]))


class _UnsupportedJSON(Exception):
    pass


def go_json_value(v: Any) -> Any:
    """JSON-ready data in the shape Go's `json.Marshal` writes `v` (map keys sorted)."""
    if v is None or v is NO_VALUE:
        return None
    if isinstance(v, GoJSONMarshaler):
        return v.go_json()
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise _UnsupportedJSON(v)
        return v
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, Mapping):
        return {str(k): go_json_value(x) for k, x in sorted_items(v)}
    if is_seq(v):
        return [go_json_value(x) for x in v]
    if attrs.has(type(v)):
        return {f.name: go_json_value(getattr(v, f.name)) for f in attrs.fields(type(v))}
    return str(v)


def json_func(v: Any) -> str:
    # Ollama ignores json.Marshal's error, so an unsupported value (NaN) renders as "".
    try:
        return gojson.dumps(go_json_value(v))
    except _UnsupportedJSON:
        return ""
