"""GLM-4.6's output, as Ollama's GLM parser reads it (the base of its `glm-4.7` and `glm-ocr`
parsers; Ollama registers no `glm-4.6` name): an optional `<think>...</think>`, then answer text
and calls written

    <tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE</arg_value>...</tool_call>

Ollama reads a call as XML (Go's `encoding/xml`, after escaping all but the four argument tags)
and, where that fails, once more after putting back the argument tags the model left out. Here
the same document is read directly: the four tags, the text between them, and Go's rules for
both (tags closed in order, XML's characters only, line ends as `\n`). Values are typed by the
tool's schema as Qwen 3 Coder's are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.buffered import _overlap
from trio_ollama.parsers.qwen3 import ParseError, _functions, _typed, _types
from trio_ollama.parsers.tagged import StatefulParser, TagSearch
from trio_ollama.templates import ToolCall

__all__ = ["GLM46Parser"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
KEY_OPEN, KEY_CLOSE = "<arg_key>", "</arg_key>"
VALUE_OPEN, VALUE_CLOSE = "<arg_value>", "</arg_value>"
_CYCLE = (KEY_OPEN, KEY_CLOSE, VALUE_OPEN, VALUE_CLOSE)
_TAG = re.compile(r"<(/?)(arg_key|arg_value)>")
# What XML 1.0 allows in text; Go's decoder refuses the rest.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _XMLError(ValueError):
    pass


def _xml(raw: str) -> tuple[str, list[str], list[str]]:
    """`<tool_call>raw</tool_call>` as Go's `xml.Unmarshal` reads it into Ollama's struct: the
    call's own text, and the text of each `arg_key` and `arg_value` child, in order."""
    stack = ["tool_call"]
    content: list[str] = []
    keys: list[str] = []
    values: list[str] = []
    current: list[str] | None = None
    pos = 0
    for match in [*_TAG.finditer(raw), None]:
        end = len(raw) if match is None else match.start()
        text = raw[pos:end]
        if bad := _NOT_XML_CHAR.search(text):
            line = 1 + raw.count("\n", 0, pos + bad.start())
            raise _XMLError(f"XML syntax error on line {line}: illegal character code "
                            f"U+{ord(bad.group()):04X}")  # fmt: skip
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if len(stack) == 1:
            content.append(text)
        elif len(stack) == 2 and current is not None:
            current.append(text)
        if match is None:
            break
        pos = match.end()
        closing, name = match.group(1) == "/", match.group(2)
        if not closing:
            stack.append(name)
            if len(stack) == 2:
                current = []
            continue
        if stack[-1] != name:
            line = 1 + raw.count("\n", 0, match.start())
            raise _XMLError(f"XML syntax error on line {line}: element <{stack[-1]}> closed by "
                            f"</{name}>")  # fmt: skip
        stack.pop()
        if len(stack) == 1 and current is not None:
            (keys if name == "arg_key" else values).append("".join(current))
            current = None
    if len(stack) > 1:
        line = 1 + raw.count("\n")
        raise _XMLError(f"XML syntax error on line {line}: element <{stack[-1]}> closed by "
                        "</tool_call>")  # fmt: skip
    return "".join(content), keys, values


def _next_tag(text: str) -> tuple[int, int]:
    """Where the first of the four argument tags is in `text`, and which (-1: none)."""
    match = _TAG.search(text)
    if match is None:
        return -1, -1
    return match.start(), _CYCLE.index(match.group())


def _repair(s: str) -> str:
    """Ollama's repair of a call whose argument tags are missing or out of order: walk the
    key-open, key-close, value-open, value-close cycle, putting back each tag the model left
    out before the next one it wrote."""
    at, first = _next_tag(s)
    if at == -1:
        return s
    out: list[str] = []
    prefix, s = s[:at], s[at:]
    phase = 0
    space = re.search(r"\s", prefix)
    if first != 0 and space is not None:
        # "name key</arg_key>": a name has no blanks, so the key starts after the first.
        out += [prefix[: space.start()], KEY_OPEN, prefix[space.start() :].lstrip()]
        phase = 1
    else:
        out.append(prefix)
    while s:
        at, found = _next_tag(s)
        expected, is_open = _CYCLE[phase], phase % 2 == 0
        if at == -1:
            if not is_open:
                out += [s, expected]
                phase = (phase + 1) % 4
            break
        if found == phase:
            out += [s[:at], expected]
            s = s[at + len(expected) :]
            phase = (phase + 1) % 4
            continue
        if is_open and at > 0:
            out += [expected, s[:at]]
            phase = (phase + 1) % 4
            s = s[at:]
            continue
        while phase != found:
            if phase % 2 == 1 and (phase + 1) % 4 == found and at > 0:
                out.append(s[:at])
                s, at = s[at:], 0
            out.append(_CYCLE[phase])
            phase = (phase + 1) % 4
    out.append({1: KEY_CLOSE + VALUE_OPEN + VALUE_CLOSE, 2: VALUE_OPEN + VALUE_CLOSE,
                3: VALUE_CLOSE}.get(phase, ""))  # fmt: skip
    return "".join(out)


class GLM46Parser(StatefulParser):
    preserved_tokens: ClassVar[tuple[str, ...]] = (
        THINK_OPEN,
        THINK_CLOSE,
        TOOL_OPEN,
        TOOL_CLOSE,
        KEY_OPEN,
        KEY_CLOSE,
        VALUE_OPEN,
        VALUE_CLOSE,
    )

    _HOLDS_BLANKS = ("content", "thinking", "think?")
    has_tool_support = True
    has_thinking_support = True

    def __init__(self) -> None:
        # "think?": the output may open with <think>; "...-blanks": blanks go before the next.
        self._state = "think?"
        self._buffer = ""
        self._trim = False
        self._blanks_held = True
        self._tools: list[Mapping[str, Any]] = []
        self._functions: dict[str, Mapping[str, Any]] = {}
        self._index = 0
        self._think_close = TagSearch(THINK_CLOSE)
        self._tool_open = TagSearch(TOOL_OPEN)
        self._tool_close = TagSearch(TOOL_CLOSE)
        self._searches = (self._think_close, self._tool_open, self._tool_close)

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._tools = list(tools)
        self._functions = _functions(tools)
        self._index = 0

    def _finish(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> None:
        if done and self._state == "tool":
            # Only the outer closing tag may be missing at the end: the rest must be whole.
            raw = self._buffer
            if n := _overlap(raw, TOOL_CLOSE):
                raw = raw[:-n].rstrip()
            try:
                calls.append(self._call(raw, final=True))
            except ParseError as exc:
                raise ParseError(f"incomplete GLM tool call: {exc}") from None
            self._buffer, self._state = "", "content"

    def _eat(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> bool:
        acc = self._buffer
        if self._state == "think?":
            trimmed = acc.lstrip()
            if trimmed.startswith(THINK_OPEN):
                self._consume(trimmed[len(THINK_OPEN) :], trim=True, state="thinking")
                return True
            if THINK_OPEN.startswith(trimmed):
                return False  # blanks, or the start of <think>
            self._state = "content"
            return True
        if self._state == "thinking":
            return self._read_to(self._think_close, thinking, "content")
        if self._state == "content":
            return self._read_to(self._tool_open, content, "tool")
        # "tool": not streamed; the call goes out whole at its closing tag.
        close = self._tool_close.find(acc)
        if close == -1:
            return False
        calls.append(self._call(acc[:close].rstrip(), final=False))
        self._consume(acc[close + len(TOOL_CLOSE) :], trim=True, state="content")
        return True

    def _call(self, raw: str, *, final: bool) -> ToolCall:
        try:
            content, keys, values = _xml(raw)
        except _XMLError as exc:
            if final:
                raise ParseError(str(exc)) from None
            try:
                content, keys, values = _xml(_repair(raw))
            except _XMLError:
                raise ParseError(f"failed to parse XML: {exc}") from None
        name = content.strip()
        if not name:
            raise ParseError("empty function name")
        if len(keys) != len(values):
            raise ParseError(f"mismatched arg_key and arg_value counts: {len(keys)} keys, "
                             f"{len(values)} values")  # fmt: skip
        function = self._functions.get(name)
        if final:
            self._check_final(name, function, keys)
        args: dict[str, Any] = {}
        for key, value in zip(keys, values, strict=True):
            key = key.strip()
            value = value.removeprefix("\n").removesuffix("\n")
            args[key] = _typed(value, _types(function, key))
        return self._numbered(name, args)

    def _check_final(self, name: str, function: Mapping[str, Any] | None, keys: list[str]) -> None:
        """At the end of the output, stricter than for a closed call: repairing a cut-off
        argument could make a partial answer into a call that changes something."""
        if function is None:
            raise ParseError(f'tool "{name}" is not declared')
        seen = {key.strip() for key in keys}
        if "" in seen:
            raise ParseError("empty argument name")
        for required in (function.get("parameters") or {}).get("required") or ():
            if required not in seen:
                raise ParseError(f'required argument "{required}" is missing for tool "{name}"')
