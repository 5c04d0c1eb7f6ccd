"""The Qwen 3 family's output, as Ollama's built-in `qwen3`, `qwen3-thinking` and `qwen3-coder`
parsers read it: `<think>...</think>` (the prompt may already have opened it), then answer text
and `<tool_call>` sections: JSON `{"name", "arguments"}` for Qwen 3, and XML-like
`<function=NAME><parameter=P>value</parameter></function>` for Qwen 3 Coder, whose values are
typed by the tool's schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import INT64_MAX, INT64_MIN, DecodeError, loads_text
from trio_ollama.parsers.buffered import Buffered
from trio_ollama.templates import ToolCall

__all__ = ["ParseError", "Qwen3CoderParser", "Qwen3Parser"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"


def _go_json(raw: str, prefix: str = "") -> Any:
    """`raw` read as Go reads JSON (no NaN, bounded nesting and numbers): what it refuses is
    Ollama's `ParseError`, Go's words after the family's `prefix`, not Python's."""
    try:
        return loads_text(raw)
    except DecodeError as exc:
        raise ParseError(prefix + str(exc).removeprefix("invalid JSON: ")) from None


def _first_tag(acc: str, *tags: str) -> tuple[int, str]:
    """Where the first of `tags` to occur in `acc` starts, and which it is (the one listed first
    where two start together); `len(acc)` and "" when none does. Each search stops where the
    tag could no longer start before the best found so far."""
    at, tag = len(acc), ""
    for candidate in tags:
        i = acc.find(candidate, 0, at + len(candidate))
        if i != -1 and i < at:
            at, tag = i, candidate
    return at, tag


def _blank(text: str) -> bool:
    return not text or text.isspace()


def _more_blanks(blanks_held: bool, text: str) -> bool:
    """Whether `text` only adds blanks to held blanks: outside a call the parsers hold a run of
    blanks (a tag may follow, which eats them) and would change nothing but the run, so they
    skip reading it again for each piece (a long run would cost its length squared)."""
    return blanks_held and text.isspace()


def _split_at(acc: str, tag: str, trim_after: bool) -> tuple[str, str]:
    before, _, after = acc.partition(tag)
    return before.rstrip(), after.lstrip() if trim_after else after


def _find_close(acc: str, searched: int) -> tuple[int, int]:
    """Where `TOOL_CLOSE` begins in a call's text, searching only what `searched` (the last
    answer's second half) says was not searched yet; and what to pass next time. A long call
    streamed in small pieces is so read once, not once per piece."""
    close = acc.find(TOOL_CLOSE, searched)
    return close, 0 if close != -1 else max(0, len(acc) - len(TOOL_CLOSE) + 1)


class ParseError(ValueError):
    """Output a built-in parser cannot read (a tool call that is not JSON)."""


class Qwen3Parser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (THINK_OPEN, THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE)

    has_tool_support = True

    def __init__(self, *, thinking_support: bool, default_thinking: bool) -> None:
        self.has_thinking_support = thinking_support
        self._default_thinking = default_thinking
        self._state = "content"
        self._buffer = ""
        self._searched = 0  # in "tool": how much of the buffer holds no closing tag
        self._blanks_held = True
        self._index = 0
        self._maybe_open = False

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        thinking = self._default_thinking if think is None else think
        # Qwen 3 prompts end with <think> when it thinks: the output starts inside it.
        self._state = "thinking" if self.has_thinking_support and thinking else "content"
        self._maybe_open = self._state == "thinking"
        self._buffer = ""
        self._searched = 0
        self._blanks_held = True
        self._index = 0

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        if _more_blanks(self._blanks_held, text) and self._state in ("content", "thinking"):
            return "", "", []
        content: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        again = True
        while again:
            again = self._eat(content, thinking, calls)
        # Only outside a call: a call's text may be long, and is not read again here.
        self._blanks_held = self._state in ("content", "thinking") and _blank(self._buffer)
        return "".join(content), "".join(thinking), calls

    def _eat(self, content: list[str], thinking: list[str], calls: list[ToolCall]) -> bool:
        acc = self._buffer
        if self._state in ("think_start", "think_done", "tool_start"):
            trimmed = acc.lstrip()
            self._buffer = trimmed
            if not trimmed:
                return False
            self._state = {"think_start": "thinking", "think_done": "content",
                           "tool_start": "tool"}[self._state]  # fmt: skip
            return True
        if self._state == "thinking":
            if self._maybe_open:
                # Some checkpoints open <think> again although the prompt did: drop one.
                trimmed = acc.lstrip()
                if trimmed.startswith(THINK_OPEN):
                    self._buffer = trimmed[len(THINK_OPEN) :].lstrip()
                    if not self._buffer:
                        return False
                    self._maybe_open = False
                    return True
                if THINK_OPEN.startswith(trimmed):
                    return False
                self._maybe_open = False
            close, tool = acc.find(THINK_CLOSE), acc.find(TOOL_OPEN)
            if tool != -1 and (close == -1 or tool < close):
                # A call before </think> ends the thinking.
                before, self._buffer = _split_at(acc, TOOL_OPEN, True)
                if before:
                    thinking.append(before)
                self._state = "tool" if self._buffer else "tool_start"
                return True
            if close != -1:
                before, self._buffer = _split_at(acc, THINK_CLOSE, True)
                if before:
                    thinking.append(before)
                self._state = "content" if self._buffer else "think_done"
                return True
            self._stream(thinking, acc, THINK_CLOSE, TOOL_OPEN)
            return False
        if self._state == "content":
            if TOOL_OPEN in acc:
                before, self._buffer = _split_at(acc, TOOL_OPEN, True)
                if before:
                    content.append(before)
                self._state = "tool" if self._buffer else "tool_start"
                return True
            self._stream(content, acc, TOOL_OPEN)
            return False
        # "tool": a call's text, up to its closing tag
        close, self._searched = _find_close(acc, self._searched)
        if close == -1:
            return False
        raw, self._buffer = acc[:close].rstrip(), acc[close + len(TOOL_CLOSE) :].lstrip()
        calls.append(self._call(raw))
        self._state = "content"
        return True

    def _call(self, raw: str) -> ToolCall:
        data = _go_json(raw, "failed to parse JSON: ")
        name = data.get("name") if isinstance(data, dict) else None
        if not name:
            raise ParseError("empty function name")
        args = data.get("arguments") or {}
        if not isinstance(args, dict):
            raise ParseError("failed to parse JSON: arguments is not an object")
        return self._numbered(str(name), args)


_FUNCTION = re.compile(r"<function=([^>]+)>(.*?)(?:</function>|$)", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>]+)>(.*?)(?:</parameter>|(?=<parameter=)|$)", re.DOTALL)


def _functions(tools: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Each offered function by name (the first of a name, as Ollama's search finds it)."""
    out: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        fn = tool.get("function") or {}
        if isinstance(name := fn.get("name"), str):
            out.setdefault(name, fn)
    return out


def _types(function: Mapping[str, Any] | None, parameter: str) -> list[str]:
    if function is None:
        return []
    prop = ((function.get("parameters") or {}).get("properties") or {}).get(parameter) or {}
    if prop.get("anyOf"):
        out: list[str] = []
        for option in prop["anyOf"]:
            kind = option.get("type")
            out += [kind] if isinstance(kind, str) else list(kind or ())
        return out
    kind = prop.get("type")
    return [kind] if isinstance(kind, str) else list(kind or ())


_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _typed(raw: str, types: Sequence[str]) -> Any:
    """Ollama's reading of a Qwen 3 Coder value: by the schema's types, in its order of
    preference, falling back to the text itself."""
    if raw.lower() == "null":
        return None
    if not types:
        return raw
    only = len(types) == 1
    if "boolean" in types:
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        if only:
            return False
    if "integer" in types:
        # Go's ParseInt: ASCII digits with a sign, nothing around them (Python's int() also
        # takes spaces, underscores and other scripts' digits), within an int64. The digits
        # are counted first: Python refuses to read more than 4,300.
        if _GO_INT.fullmatch(raw) and len(raw.lstrip("+-").lstrip("0")) <= 19:
            integer = int(raw, 10)
            if INT64_MIN <= integer <= INT64_MAX:
                return integer
        if only:
            return raw
    if "number" in types:
        number = float(raw) if _GO_FLOAT.fullmatch(raw) else math.nan
        if math.isfinite(number):  # out of range, as Go's: the text itself
            return int(number) if number.is_integer() else number
        if only:
            return raw
    for kind, want in (("array", list), ("object", dict)):
        if kind in types:
            try:
                # What Go's json.Unmarshal refuses (NaN, numbers past a float64) stays text,
                # as does nesting past what Python can follow.
                value = loads_text(raw)
            except DecodeError:
                value = None
            if isinstance(value, want):
                return value
            if only:
                return raw
    return raw


class Qwen3CoderParser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (TOOL_OPEN, TOOL_CLOSE)

    has_tool_support = True
    has_thinking_support = False

    def __init__(self) -> None:
        self._functions: dict[str, Mapping[str, Any]] = {}
        self._buffer = ""
        self._searched = 0  # in a call: how much of the buffer holds no closing tag
        self._blanks_held = True
        self._in_call = False
        self._index = 0

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._functions = _functions(tools)
        self._index = 0

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        if _more_blanks(self._blanks_held, text) and not self._in_call:
            return "", "", []
        content: list[str] = []
        calls: list[ToolCall] = []
        while True:
            acc = self._buffer
            if not self._in_call:
                if TOOL_OPEN in acc:
                    before, _, self._buffer = acc.partition(TOOL_OPEN)
                    if before.rstrip():
                        content.append(before.rstrip())
                    self._in_call = True
                    continue
                self._stream(content, acc, TOOL_OPEN)
                break
            close, self._searched = _find_close(acc, self._searched)
            if close == -1:
                break
            raw, rest = acc[:close], acc[close + len(TOOL_CLOSE) :]
            self._buffer = rest.lstrip()
            self._in_call = False
            calls.append(self._call(raw))
        # Only outside a call: a call's text may be long, and is not read again here.
        self._blanks_held = not self._in_call and _blank(self._buffer)
        return "".join(content), "", calls

    def _call(self, raw: str) -> ToolCall:
        match = _FUNCTION.search(raw)
        if match is None:
            raise ParseError("no <function=...> in the tool call")
        name = match.group(1)
        args: dict[str, Any] = {}
        function = self._functions.get(name)
        for param, value in _PARAMETER.findall(match.group(2)):
            value = value.removeprefix("\n").removesuffix("\n")
            args[param] = _typed(value, _types(function, param))
        return self._numbered(name, args)
