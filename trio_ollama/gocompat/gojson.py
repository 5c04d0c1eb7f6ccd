"""JSON bytes as Go's `encoding/json` writes them, so files and replies match Ollama's exactly.

Go writes compact JSON, leaves non-ASCII as UTF-8, escapes `<`, `>`, `&`, U+2028 and U+2029, and
`json.Encoder.Encode` ends with a newline (which Ollama's manifests and config blobs keep).
"""

from __future__ import annotations

import json
from typing import Any

_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


# Go escapes these two whatever the encoder's settings.
_LINE_ESCAPES = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})


def _go_numbers(value: Any) -> Any:
    # Go writes an integral float as `1`, Python as `1.0`.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_go_numbers(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = None, *, escape_html: bool = True) -> str:
    """`json.Marshal`: compact, HTML-escaped (unless an encoder's `SetEscapeHTML(false)` says
    otherwise). Dict order is kept (Go structs are ordered too). With `indent`,
    `json.MarshalIndent(v, "", <indent spaces>)`."""
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(_go_numbers(value), ensure_ascii=False, separators=separators, indent=indent)
    return text.translate(_ESCAPES if escape_html else _LINE_ESCAPES)


def encode(value: Any) -> bytes:
    """`json.NewEncoder(w).Encode(v)`: `dumps` plus the trailing newline, as UTF-8."""
    return (dumps(value) + "\n").encode()


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def quote(s: str, ascii_only: bool = False) -> str:
    """Go's `strconv.Quote` (`%q`), or `QuoteToASCII` with `ascii_only`."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif (ch == " " or ch.isprintable()) and (not ascii_only or code < 0x80):
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
