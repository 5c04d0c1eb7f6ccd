"""LFM2's output, as Ollama's `lfm2` and `lfm2-thinking` parsers read it: `<think>...</think>`
first when the request thinks, then answer text and calls written in Python between
`<|tool_call_start|>` and `<|tool_call_end|>`: `[name(key="value", n=1), other()]`. A section
Ollama cannot read swallows the rest of the output, as in Ollama; it is never an error."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import DecodeError, loads_text
from trio_ollama.parsers.buffered import Buffered
from trio_ollama.parsers.qwen3 import _more_blanks
from trio_ollama.templates import ToolCall

__all__ = ["LFM2Parser"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_START, CALL_END = "<|tool_call_start|>", "<|tool_call_end|>"
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLANKS = " \t\n\v\f\r"


class _Unreadable(ValueError):
    pass


def _matching_paren(s: str, open_at: int) -> int:
    depth, i = 1, open_at + 1
    while i < len(s):
        ch = s[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        elif ch in "'\"":
            i += 1
            while i < len(s) and s[i] != ch:
                i += 2 if s[i] == "\\" and i + 1 < len(s) else 1
        i += 1
    return -1


def _python_to_json(s: str) -> str:
    """Ollama's `pythonLiteralToJSON`: quotes made double, True/False/None made JSON's."""
    out: list[str] = []
    quote = ""
    escaped = False
    i = 0
    while i < len(s):
        ch = s[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                ch, quote = '"', ""
            elif quote == "'" and ch == '"':
                ch = '\\"'
            out.append(ch)
        elif ch in "'\"":
            quote, escaped = ch, False
            out.append('"')
        elif (match := _IDENT.match(s, i)) is not None:
            word = match.group()
            out.append({"True": "true", "False": "false", "None": "null"}.get(word, word))
            i = match.end()
            continue
        else:
            out.append(ch)
        i += 1
    if quote:
        raise _Unreadable("unterminated string")
    return "".join(out)


def _literal(token: str) -> Any:
    known = {"": "", "true": True, "True": True, "false": False, "False": False,
             "null": None, "None": None}  # fmt: skip
    if token in known:
        return known[token]
    if _GO_INT.fullmatch(token) and len(token) <= 20 and -(2**63) <= int(token) < 2**63:
        return int(token)
    if _GO_FLOAT.fullmatch(token) and math.isfinite(number := float(token)):
        return number
    if token.startswith(("[", "{")):
        for text in (token, None):
            try:
                return loads_text(text if text is not None else _python_to_json(token))
            except (DecodeError, _Unreadable):
                pass
    return token


def _value(s: str, i: int) -> tuple[Any, int]:
    if s[i] in "'\"":
        quote, start = s[i], i + 1
        i = start
        while i < len(s):
            if s[i] == "\\" and i + 1 < len(s):
                i += 2
                continue
            if s[i] == quote:
                return s[start:i], i + 1
            i += 1
        raise _Unreadable("invalid argument: unterminated string")
    start = i
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    quote = ""
    escaped = False
    while i < len(s):
        ch = s[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] = max(0, depth[closing[ch]] - 1)
        elif ch == "," and not any(depth.values()):
            return _literal(s[start:i].strip()), i
        i += 1
    return _literal(s[start:i].strip()), i


def _arguments(s: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    i = 0
    while i < len(s):
        while i < len(s) and (s[i] == "," or s[i] in _BLANKS):
            i += 1
        if i >= len(s):
            break
        start = i
        while i < len(s) and s[i] not in "=,":
            i += 1
        if i >= len(s) or s[i] != "=":
            raise _Unreadable("invalid argument: expected '='")
        key = s[start:i].strip()
        if not key:
            raise _Unreadable("invalid argument: empty key")
        i += 1
        while i < len(s) and s[i] in _BLANKS:
            i += 1
        if i >= len(s):
            raise _Unreadable("invalid argument: missing value")
        args[key], i = _value(s, i)
        if i < len(s) and s[i] == ",":
            i += 1
    return args


def _calls(section: str) -> list[tuple[str, dict[str, Any]]]:
    """Ollama's reading of one section (`parseToolCallsContent`), each character visited a
    bounded number of times."""
    s = section.strip().removeprefix(CALL_START).strip().removesuffix(CALL_END).strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1].strip()
    calls: list[tuple[str, dict[str, Any]]] = []
    pos = 0
    while pos < len(s):
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if s.startswith(",", pos):
            pos += 1
            while pos < len(s) and s[pos].isspace():
                pos += 1
        if pos >= len(s):
            break
        paren = s.find("(", pos)
        if paren == -1:
            raise _Unreadable("invalid tool call: no opening parenthesis")
        name = s[pos:paren].strip()
        if not name:
            raise _Unreadable("invalid tool call: empty function name")
        close = _matching_paren(s, paren)
        if close == -1:
            raise _Unreadable("invalid tool call: no matching closing parenthesis")
        raw = s[paren + 1 : close]
        calls.append((name, _arguments(raw) if raw else {}))
        pos = close + 1
    if not calls:
        raise _Unreadable("no tool calls found")
    return calls


class LFM2Parser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (THINK_OPEN, THINK_CLOSE, CALL_START, CALL_END)

    has_tool_support = True

    def __init__(self, *, thinking: bool) -> None:
        self.has_thinking_support = thinking
        self._names: set[str] = set()
        self._has_tools = False
        self._state = "content"
        self._buffer = ""
        self._searched = 0
        self._trim = False  # blanks at the start of the buffer are dropped
        self._blanks_held = True
        self._index = 0

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        names = (str((t.get("function") or {}).get("name") or "") for t in tools)
        self._names = {n for n in names if n}
        self._has_tools = bool(tools)
        thinks = think in ("high", "medium", "low", "max") if isinstance(think, str) else think
        self._state = "looking" if self.has_thinking_support and thinks else "content"
        self._buffer = ""
        self._searched = 0
        self._trim = False
        self._blanks_held = True
        self._index = 0

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        if self._state == "stuck":
            self._buffer = ""
            return "", "", []
        if done and self._state == "looking":
            trimmed = self._buffer.lstrip()
            if not trimmed.startswith(THINK_OPEN):
                self._buffer, self._state = trimmed, "content"
        idle = self._state in ("looking", "thinking", "content")
        if not done and idle and _more_blanks(self._blanks_held, text):
            return "", "", []
        content: list[str] = []
        thinking: list[str] = []
        found: list[tuple[str, dict[str, Any]]] = []
        while self._eat(content, thinking, found):
            pass
        if done and self._state == "content":
            # The end: what was held as a possible tag or blanks before one is the answer's.
            content.append(self._buffer)
            self._buffer = ""
        # Only where a run of blanks is held (a call's text may be long: not read again here).
        self._blanks_held = self._state in ("looking", "thinking", "content") and (
            not self._buffer or self._buffer.isspace()
        )
        answer = "".join(content)
        if done and not found and self._has_tools:
            try:
                fallback = _calls(answer.strip())
            except _Unreadable:
                fallback = []
            if fallback and all(not self._names or n in self._names for n, _ in fallback):
                answer, found = "", fallback
        calls = []
        for name, args in found:
            calls.append(self._numbered(name, args))
        return answer, "".join(thinking), calls

    def _eat(self, content: list[str], thinking: list[str],
             found: list[tuple[str, dict[str, Any]]]) -> bool:  # fmt: skip
        acc = self._buffer
        if self._trim:
            acc = self._buffer = acc.lstrip()
            if not acc:
                return False
            self._trim = False
        if self._state == "looking":
            trimmed = acc.lstrip()
            if trimmed.startswith(THINK_OPEN):
                self._buffer, self._state, self._trim = trimmed[len(THINK_OPEN) :], "thinking", True
                return True
            if THINK_OPEN.startswith(trimmed):
                return False
            self._buffer, self._state = trimmed, "content"
            return True
        if self._state == "thinking":
            if acc.startswith(THINK_OPEN):
                self._buffer, self._trim = acc[len(THINK_OPEN) :], True
                return True
            before, tag, after = acc.partition(THINK_CLOSE)
            if tag:
                if before.rstrip():
                    thinking.append(before.rstrip())
                self._buffer, self._state, self._trim = after, "content", True
                return True
            self._stream(thinking, acc, THINK_CLOSE)
            return False
        if self._state == "content":
            before, tag, after = acc.partition(CALL_START)
            if tag:
                if before.rstrip():
                    content.append(before.rstrip())
                self._buffer, self._state, self._searched = after, "calls", 0
                return True
            self._stream(content, acc, CALL_START)
            return False
        # "calls": a section, up to its end tag
        end = acc.find(CALL_END, self._searched)
        if end == -1:
            self._searched = max(0, len(acc) - len(CALL_END) + 1)
            return False
        try:
            found.extend(_calls(acc[:end]))
        except _Unreadable:
            self._state, self._buffer = "stuck", ""
            return False
        rest = acc[end + len(CALL_END) :]
        self._searched = 0
        if rest.startswith(CALL_START):
            self._buffer = rest[len(CALL_START) :]
        else:
            # The blanks after it go, in whatever piece they come.
            self._buffer, self._state, self._trim = rest, "content", True
        return True
