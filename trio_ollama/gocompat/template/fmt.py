"""Go's `fmt.Sprint`, `Sprintln` and `Sprintf` for template values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from trio_ollama.gocompat.gojson import quote as go_quote
from trio_ollama.gocompat.template.nodes import NO_VALUE, GoStringer
from trio_ollama.gocompat.template.values import (
    fmt_v,
    format_float_shortest,
    is_seq,
    sorted_items,
    type_name,
)

# Go's fmt: a width or precision past a million is refused, not honoured.
_TOO_LARGE = 1_000_000


def go_sprint(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_fmt_nil(a))
    return "".join(out)


def go_sprintln(*args: Any) -> str:
    return " ".join(_fmt_nil(a) for a in args) + "\n"


def _fmt_nil(v: Any) -> str:
    return "<nil>" if v is None or v is NO_VALUE else fmt_v(v)


@attrs.frozen
class _Spec:
    flags: str
    width: int | None
    prec: int | None


def _pad(s: str, spec: _Spec, numeric: bool = False) -> str:
    if spec.width is None or len(s) >= spec.width:
        return s
    fill = spec.width - len(s)
    if "-" in spec.flags:
        return s + " " * fill
    if "0" in spec.flags and numeric:
        sign = s[0] if s[:1] in ("-", "+", " ") else ""
        return sign + "0" * fill + s[len(sign) :]
    return " " * fill + s


def _bad_verb(verb: str, v: Any) -> str:
    if v is None or v is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(v)}={fmt_v(v)})"


def _fmt_int(v: int, verb: str, spec: _Spec) -> str:
    sign = "-" if v < 0 else ("+" if "+" in spec.flags else (" " if " " in spec.flags else ""))
    n = abs(v)
    match verb:
        case "d" | "v":
            body = str(n)
        case "x":
            body = ("0x" if "#" in spec.flags else "") + format(n, "x")
        case "X":
            body = ("0X" if "#" in spec.flags else "") + format(n, "X")
        case "o":
            body = ("0" if "#" in spec.flags else "") + format(n, "o")
        case "O":
            body = "0o" + format(n, "o")
        case "b":
            body = format(n, "b")
        case "c":
            return _pad(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd", spec)
        case "q":
            return _pad(
                "'" + go_quote(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd")[1:-1] + "'", spec
            )
        case "U":
            return _pad(f"U+{v:04X}", spec)
        case _:
            return _bad_verb(verb, v)
    if spec.prec is not None and len(body) < spec.prec:
        body = "0" * (spec.prec - len(body)) + body
    return _pad(sign + body, spec, numeric=spec.prec is None)


def _fmt_float(v: float, verb: str, spec: _Spec) -> str:
    if math.isnan(v) or math.isinf(v):
        return _pad("NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf"), spec)
    sign = "+" if "+" in spec.flags and v >= 0 else (" " if " " in spec.flags and v >= 0 else "")
    match verb:
        case "v" | "g" | "G":
            if spec.prec is None:
                body = format_float_shortest(v, upper=verb == "G")
            else:
                body = format(v, f".{max(spec.prec, 1)}{'G' if verb == 'G' else 'g'}")
        case "e" | "E" | "f" | "F":
            prec = 6 if spec.prec is None else spec.prec
            body = format(v, f".{prec}{verb}")
        case _:
            return _bad_verb(verb, v)
    return _pad(sign + body, spec, numeric=True)


def _fmt_str(s: str, verb: str, spec: _Spec) -> str:
    match verb:
        case "s" | "v":
            body = s if spec.prec is None else s[: spec.prec]
        case "q":
            if "#" in spec.flags and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
                body = "`" + s + "`"
            else:
                body = go_quote(s, ascii_only="+" in spec.flags)
        case "x" | "X":
            data = s.encode()
            body = data.hex() if verb == "x" else data.hex().upper()
        case _:
            return _bad_verb(verb, s)
    return _pad(body, spec)


def _fmt_arg(v: Any, verb: str, spec: _Spec) -> str:
    if verb == "T":
        return _pad(type_name(v), spec)
    if v is None or v is NO_VALUE:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(verb, v)
    if isinstance(v, GoStringer) and verb in "vsxXq":
        return _fmt_str(v.go_string(), verb, spec)
    if isinstance(v, bool):
        return _pad("true" if v else "false", spec) if verb in "tv" else _bad_verb(verb, v)
    if isinstance(v, int):
        return _fmt_int(v, verb, spec)
    if isinstance(v, float):
        return _fmt_float(v, verb, spec)
    if isinstance(v, str):
        return _fmt_str(v, verb, spec)
    if isinstance(v, bytes | bytearray):
        if verb in "sqxX":
            return _fmt_str(bytes(v).decode("utf-8", "replace"), verb, spec)
        return "[" + " ".join(_fmt_arg(b, verb, spec) for b in v) + "]"
    if isinstance(v, Mapping):
        items = sorted_items(v)
        inner = " ".join(f"{_fmt_arg(k, verb, spec)}:{_fmt_arg(x, verb, spec)}" for k, x in items)
        return "map[" + inner + "]"
    if is_seq(v):
        return "[" + " ".join(_fmt_arg(x, verb, spec) for x in v) + "]"
    if verb == "v":
        return _pad(fmt_v(v), spec)
    return _bad_verb(verb, v)


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the common verbs (%v %s %d %q %x %X %o %b %c %e %f %g %t %T %%)."""
    out: list[str] = []
    i = 0
    n = len(fmt)
    argi = 0
    reordered = False
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1

        def arg_index(pos: int) -> int:
            nonlocal argi, reordered
            if pos < n and fmt[pos] == "[":
                close = fmt.find("]", pos)
                if close > pos + 1 and fmt[pos + 1 : close].isdigit():
                    argi = int(fmt[pos + 1 : close]) - 1
                    reordered = True
                    return close + 1
            return pos

        def number(pos: int) -> tuple[int | None, int]:
            nonlocal argi
            if pos < n and fmt[pos] == "*":
                if argi < len(args) and isinstance(args[argi], int):
                    value = int(args[argi])
                    argi += 1
                    return value, pos + 1
                argi += 1
                return None, pos + 1
            start = pos
            while pos < n and fmt[pos].isdigit():
                pos += 1
            return (int(fmt[start:pos]) if pos > start else None), pos

        i = arg_index(i)
        width, i = number(i)
        if width is not None and abs(width) > _TOO_LARGE:  # Go's fmt refuses these too
            out.append("%!(BADWIDTH)")
            width = None
        prec: int | None = None
        if i < n and fmt[i] == ".":
            i = arg_index(i + 1)
            prec, i = number(i)
            if prec is None:
                prec = 0
            elif abs(prec) > _TOO_LARGE:
                out.append("%!(BADPREC)")
                prec = None
        i = arg_index(i)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if width is not None and width < 0:
            flags += "-"
            width = -width
        if argi >= len(args) or argi < 0:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_arg(args[argi], verb, _Spec(flags, width, prec)))
        argi += 1
    if not reordered and argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None or a is NO_VALUE else f"{type_name(a)}={fmt_v(a)}"
            for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
