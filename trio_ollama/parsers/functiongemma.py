"""FunctionGemma's output, as Ollama's `functiongemma` parser reads it: answer text and calls
written `<start_function_call>call:name{key:value,...}<end_function_call>`, strings between
`<escape>` marks. A call Ollama cannot read is dropped, not an error."""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any, ClassVar

from trio_ollama.parsers.tagged import CallSections

__all__ = ["FunctionGemmaParser"]

OPEN, CLOSE, ESCAPE = "<start_function_call>", "<end_function_call>", "<escape>"
# Values nest at most this deep: each level splits its text again (Ollama reads any depth; a
# real call never nests so). A deeper call is dropped, as one Ollama cannot read.
MAX_NESTING = 32
_MARKS = re.compile(r"<escape>|[{}\[\],]")
_GO_SCAN_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class _TooDeep(ValueError):
    pass


def _split(text: str, *, depth_only: bool = False) -> list[str]:
    """Ollama's `splitArguments`: at the commas outside `<escape>` pairs and brackets; empty
    parts are skipped."""
    parts: list[str] = []
    start = depth = 0
    escaped = False
    for match in _MARKS.finditer(text):
        mark = match.group()
        if mark == ESCAPE:
            escaped = not escaped
        elif escaped:
            continue
        elif mark in "{[":
            depth += 1
            if depth_only and depth > MAX_NESTING:
                raise _TooDeep
        elif mark in "}]":
            depth -= 1
        elif depth == 0 and not depth_only:  # a comma
            if match.start() > start:
                parts.append(text[start : match.start()])
            start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def _number(text: str) -> int | float | None:
    """Go's `Sscanf` reading: `%d` when the whole text is that integer, else `%f` of the
    number the text begins with."""
    if re.fullmatch(r"-?[1-9][0-9]*|0", text) and len(text) <= 20 and -(2**63) <= int(text) < 2**63:
        return int(text)
    # Sscanf skips the spaces before a number (not a newline).
    match = _GO_SCAN_FLOAT.match(text.lstrip(" \t\r"))
    if match is None:
        return None
    number = float(match.group())
    return number if number == number and abs(number) != float("inf") else None


def _value(text: str) -> Any:
    if len(text) >= 2 * len(ESCAPE) and text.startswith(ESCAPE) and text.endswith(ESCAPE):
        return text[len(ESCAPE) : -len(ESCAPE)]
    if text in ("true", "false"):
        return text == "true"
    if (number := _number(text)) is not None:
        return number
    if text.startswith("[") and text.endswith("]"):
        return [_value(p) for p in _split(text[1:-1])] or None
    if text.startswith("{") and text.endswith("}"):
        return _pairs(text[1:-1])
    return text


def _pairs(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in _split(text):
        key, colon, value = part.partition(":")
        if colon:
            out[key] = _value(value)
    return out


class _Lines:
    """Where the last `}` of each line of a text lies, found once a line: Go's
    `call:([^{]+)\\{(.*)\\}` needs one after the `{` on its line."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._last: dict[int, int] = {}

    def close_after(self, at: int) -> int:
        line = bisect_left(self._newlines, at)
        if line not in self._last:
            begin = self._newlines[line - 1] + 1 if line else 0
            end = self._newlines[line] if line < len(self._newlines) else len(self._text)
            self._last[line] = self._text.rfind("}", begin, end)
        close = self._last[line]
        return close if close > at else -1


def _call(text: str) -> tuple[str, dict[str, Any]] | None:
    """The leftmost match of Ollama's pattern, without a regular expression's backtracking
    (each `call:` tried in turn would read the rest of its line again). No match is a call
    without a name, as in Ollama; None: one nested too deep to read."""
    lines: _Lines | None = None
    at = text.find("call:")
    while at != -1:
        brace = text.find("{", at + 5)
        if brace == -1:
            break
        if brace > at + 5:
            lines = lines or _Lines(text)
            if (close := lines.close_after(brace)) != -1:
                try:
                    _split(text[brace + 1 : close], depth_only=True)
                except _TooDeep:
                    return None
                return text[at + 5 : brace], _pairs(text[brace + 1 : close])
        at = text.find("call:", at + 1)
    return "", {}


class FunctionGemmaParser(CallSections):
    preserved_tokens: ClassVar[tuple[str, ...]] = (OPEN, CLOSE)

    OPEN, CLOSE = OPEN, CLOSE

    def _section(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        found = _call(text)
        return [found] if found is not None else []
