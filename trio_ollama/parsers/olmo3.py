"""Olmo 3's output, as Ollama's `olmo3` parser reads it: answer text and calls in
`<function_calls>` sections, one Python-like call a line: `name(key="value", n=1)`. A section
Ollama cannot read is dropped, not an error."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from trio_ollama.parsers.tagged import CallSections

__all__ = ["Olmo3Parser"]

OPEN, CLOSE = "<function_calls>", "</function_calls>"
_CALL = re.compile(r"(\w+)\((.*)\)", re.ASCII | re.DOTALL)
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Values nest at most this deep: each level splits its text again, so a deeper one would cost
# the section's length that many times (Ollama reads any depth; a real call never nests so).
MAX_NESTING = 32


class _Unreadable(ValueError):
    """A section Ollama would not read (it logs and drops it)."""


def _split(text: str, *, depth_only: bool = False) -> list[str]:
    """Ollama's `splitArguments`: at the commas outside quotes and brackets (or, with
    `depth_only`, a check that brackets nest no deeper than `MAX_NESTING`)."""
    parts: list[str] = []
    start = depth = 0
    quote = ""
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quote:
            if ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
            if depth_only and depth > MAX_NESTING:
                raise _Unreadable("nested too deep")
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0 and not depth_only:
            parts.append(text[start:i])
            start = i + 1
    if start < len(text):
        parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    text = text.replace("\\\\", "\x00").replace('\\"', '"').replace("\\'", "'")
    text = text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
    return text.replace("\x00", "\\")


def _value(text: str) -> Any:
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return _unescape(s[1:-1])
    if s in ("true", "True"):
        return True
    if s in ("false", "False"):
        return False
    if s in ("null", "None", "nil"):
        return None
    # Digits counted before int() (Python refuses to read more than 4,300).
    if _GO_INT.fullmatch(s) and len(s) <= 20 and -(2**63) <= int(s) < 2**63:
        return int(s)
    if _GO_FLOAT.fullmatch(s) and math.isfinite(number := float(s)):
        return number
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        return [_value(p) for p in _split(inner)] if inner else []
    if s.startswith("{") and s.endswith("}"):
        out: dict[str, Any] = {}
        for key, value in _entries(s[1:-1].strip(), ":", "invalid object entry"):
            if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
                key = key[1:-1]
            out[key] = _value(value)
        return out
    return s


def _entries(text: str, separator: str, malformed: str) -> Iterator[tuple[str, str]]:
    """The `key<separator>value` entries between `text`'s top-level commas (an object's, or a
    call's arguments), key stripped; an entry without the separator is Ollama's `malformed`
    error, empty ones are skipped."""
    for part in _split(text):
        part = part.strip()
        if not part:
            continue
        key, found, value = part.partition(separator)
        if not found:
            raise _Unreadable(f"{malformed}: {part}")
        yield key.strip(), value


def _calls(section: str) -> list[tuple[str, dict[str, Any]]]:
    _split(section, depth_only=True)
    out = []
    for line in section.strip().split("\n"):
        line = line.strip()
        if not line:
            continue
        match = _CALL.fullmatch(line)
        if match is None:
            raise _Unreadable("invalid function call format")
        entries = _entries(match.group(2).strip(), "=", "invalid argument format")
        args = {key: _value(value) for key, value in entries}
        out.append((match.group(1), args))
    return out


class Olmo3Parser(CallSections):
    preserved_tokens: ClassVar[tuple[str, ...]] = (OPEN, CLOSE)

    OPEN, CLOSE = OPEN, CLOSE
    RELEASE_AT_END = True

    def _section(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        try:
            return _calls(text)
        except _Unreadable:
            return []
