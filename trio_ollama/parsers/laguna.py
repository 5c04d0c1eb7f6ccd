"""Poolside's Laguna output, as Ollama's built-in `laguna` and `poolside-v1` parsers read it.

The prompt ends `<think>` when the request thinks (the output starts inside the thinking, up to
`</think>`) and `</think>` when it does not, which is the default; a `<think>` block the model
writes anyway opens thinking that is shown only when asked for. Calls are
`<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>` (values typed by
the tool's schema), or JSON within the tags (`{"name", "arguments"}`, or `NAME` then the
arguments' JSON). Offered tools, the model's slips are calls too: a call written between
`<user>` tags (when it names an offered tool), and a bare JSON object with a `"name"` or
`"arguments"`. Some common names (`read_file` for `read`, ...) map to the offered tool.
`laguna` continues an assistant prefill in place (its answer is no thinking); `poolside-v1`'s
prompt always opens a new turn.

Where Ollama's answer depends on how the output was cut into pieces, this parser gives the
same answer for any cut, the one Ollama gives a token a piece: the first tag in the text is
the one that counts (Ollama, given the text whole, looks for one kind of tag after another);
`</think>` in the answer goes with the blanks around it wherever it stands (Ollama drops it
only where what it holds starts with it); a bare JSON object starts with `{"`, `{` and a line
break, and ends where its braces close, text after it being answer (Ollama waits for the
output's end when more follows in the same piece, then fails to read it); a `<user>` block
that is no call is answer text, and one left open at the end too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import BracketScanner, DecodeError, loads_text, tool_arguments
from trio_ollama.parsers.qwen3 import ParseError, _functions, _typed, _types
from trio_ollama.parsers.tagged import Holdback, PrefillingParser, TagSearch
from trio_ollama.templates import Message, ToolCall, thinks

__all__ = ["LagunaParser", "PoolsideV1Parser"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
USER_OPEN, USER_CLOSE = "<user>", "</user>"
ARG_KEY, ARG_KEY_CLOSE = "<arg_key>", "</arg_key>"
ARG_VALUE_CLOSE = "</arg_value>"
# How a bare JSON call starts (as Ollama takes a bare object for a call before it is whole).
JSON_STARTS = ('{"', "{\n", "{\r\n")

# What is held back at the thinking's and the answer's end, lest it begin a tag.
_HOLD_THINKING = Holdback(THINK_CLOSE, TOOL_OPEN)
_HOLD = Holdback(THINK_OPEN, THINK_CLOSE, TOOL_OPEN, USER_OPEN)
_HOLD_WITH_TOOLS = Holdback(THINK_OPEN, THINK_CLOSE, TOOL_OPEN, USER_OPEN, *JSON_STARTS)
# What the answer is searched for: a <user> block and a bare JSON call only when offered tools.
_EVENTS = re.compile("|".join(re.escape(t) for t in (THINK_OPEN, THINK_CLOSE, TOOL_OPEN)))
_EVENTS_WITH_TOOLS = re.compile(_EVENTS.pattern + "|" + re.escape(USER_OPEN) + r'|\{(?:"|\r?\n)')
# Between a key and its value: blanks as Go's regexp `\s` has them (ASCII only).
_KEY_TO_VALUE = re.compile(r"</arg_key>[\t\n\f\r ]*<arg_value>")
_BLANKS = re.compile(r"\s*")
# Names Laguna was trained on, for the offered tool of Ollama's choice.
_ALIASES = {"read_file": "read", "write_file": "write", "edit_file": "edit",
            "web_fetch": "webfetch"}  # fmt: skip


class LagunaParser(PrefillingParser):
    preserved_tokens: ClassVar[tuple[str, ...]] = (
        THINK_OPEN,
        THINK_CLOSE,
        TOOL_OPEN,
        TOOL_CLOSE,
        USER_OPEN,
        USER_CLOSE,
        ARG_KEY,
        ARG_KEY_CLOSE,
        "<arg_value>",
        ARG_VALUE_CLOSE,
    )
    has_tool_support = True
    has_thinking_support = True
    # Whether the prompt continues a final assistant message in place (a prefill).
    _CONTINUES_PREFILL = True

    def __init__(self) -> None:
        self._functions: dict[str, Mapping[str, Any]] = {}
        self._state = "content"  # "thinking", "tool", "user" (a <user> block), "json"
        self._buffer = ""
        self._show_thinking = False
        self._first_think = False  # in "thinking": a <think> first repeats the prompt's
        self._trim = True  # the blanks at the buffer's start go (a tag before them ate them)
        self._blanks_held = True
        self._index = 0
        self._open = 0  # in "user" and "json": where the block starts in the buffer
        self._think_close = TagSearch(THINK_CLOSE)
        self._tool_open = TagSearch(TOOL_OPEN)
        self._tool_close = TagSearch(TOOL_CLOSE)
        self._user_close = TagSearch(USER_CLOSE)
        self._think_open = TagSearch(THINK_OPEN)
        self._searches = (self._think_close, self._tool_open, self._tool_close, self._user_close,
                          self._think_open)  # fmt: skip
        self._scanner = BracketScanner()
        self._scanned = 0  # in "json": how much of the buffer the scanner has read
        self._depth = 0

    def _start(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._functions = _functions(tools)
        self._show_thinking = thinks(think)  # off unless asked for, as the template has it
        self._state = "thinking" if self._show_thinking else "content"
        self._first_think = self._state == "thinking"
        self._trim = True

    def prefill(self, last: Message) -> None:
        """The conversation's last message: `laguna` continues an assistant's in place (the
        prompt closed its thinking), so the answer starts there."""
        if self._CONTINUES_PREFILL and last.role == "assistant":
            self._state = "content"
            self._first_think = False
            self._consume("", trim=True)

    def _consume(self, rest: str, *, trim: bool, state: str | None = None, at: int = 0) -> None:
        """The buffer becomes `rest`, read from its start again (a block in it from `at`);
        `trim` drops its leading blanks, and those of the pieces after it until text comes."""
        super()._consume(rest, trim=trim, state=state)
        self._open = at
        self._scanner = BracketScanner()
        self._scanned = at
        self._depth = 0

    def _eat(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> bool:
        if self._state == "thinking":
            return self._eat_thinking(thinking if self._show_thinking else [], done)
        if self._state == "content":
            return self._eat_content(content, done)
        if self._state == "tool":
            return self._eat_tool(calls, done)
        if self._state == "user":
            return self._eat_user(content, calls, done)
        return self._eat_json(content, calls, done)

    def _eat_thinking(self, thinking: list[str], done: bool) -> bool:
        acc = self._buffer
        if self._first_think:
            if acc.startswith(THINK_OPEN):  # the model opened it again: drop that
                self._first_think = False
                self._consume(acc[len(THINK_OPEN) :], trim=True)
                return True
            if THINK_OPEN.startswith(acc) and not done:
                return False
            self._first_think = False
        close, tool = self._think_close.find(acc), self._tool_open.find(acc)
        if close != -1 and (tool == -1 or close < tool):
            if before := acc[:close].rstrip():
                thinking.append(before)
            self._consume(acc[close + len(THINK_CLOSE) :], trim=True, state="content")
            return True
        if tool != -1:
            # A call ends the thinking too.
            if before := acc[:tool].rstrip():
                thinking.append(before)
            self._consume(acc[tool + len(TOOL_OPEN) :], trim=False, state="tool")
            return True
        if done:
            if out := acc.rstrip():
                thinking.append(out)
            self._consume("", trim=False, state="content")
            return False
        out, self._buffer = _HOLD_THINKING.split(acc)
        self._think_close.reset()
        self._tool_open.reset()
        if out:
            thinking.append(out)
        return False

    def _eat_content(self, content: list[str], done: bool) -> bool:
        acc = self._buffer
        events = _EVENTS_WITH_TOOLS if self._functions else _EVENTS
        if (match := events.search(acc)) is not None:
            at, tag = match.start(), match.group()
            rest = acc[match.end() :]
            if tag == THINK_OPEN:
                if acc[:at]:
                    content.append(acc[:at])
                self._consume(rest, trim=True, state="thinking")
                return True
            if tag == THINK_CLOSE:
                if before := acc[:at].rstrip():
                    content.append(before)
                self._consume(rest, trim=True)
                return True
            if tag == TOOL_OPEN:
                if before := acc[:at].rstrip():
                    content.append(before)
                self._consume(rest, trim=False, state="tool")
                return True
            # Perhaps a call (a <user> block, a bare JSON object): hold it, and the blanks
            # before it, until it is known.
            start = len(acc[:at].rstrip())
            if acc[:start]:
                content.append(acc[:start])
            state = "user" if tag == USER_OPEN else "json"
            self._consume(acc[start:], trim=False, state=state, at=at - start)
            return True
        if done:
            if out := acc.rstrip():
                content.append(out)
            self._buffer = ""
            return False
        out, self._buffer = (_HOLD_WITH_TOOLS if self._functions else _HOLD).split(acc)
        if out:
            content.append(out)
        return False

    def _eat_tool(self, calls: list[ToolCall], done: bool) -> bool:
        acc = self._buffer
        close = self._tool_close.find(acc)
        if close != -1:
            self._consume(acc[close + len(TOOL_CLOSE) :], trim=True, state="content")
            calls.append(self._numbered(*_read_call(acc[:close], self._functions)))
            return True
        if done and acc.strip():
            self._consume("", trim=False, state="content")
            calls.append(self._numbered(*_read_call(acc, self._functions)))
        return False

    def _eat_user(self, content: list[str], calls: list[ToolCall], done: bool) -> bool:
        acc = self._buffer
        inside = self._open + len(USER_OPEN)
        found = [(at, search.tag) for search in (self._user_close, self._tool_open,
                                                 self._think_open)
                 if (at := search.find(acc, inside)) != -1]  # fmt: skip
        if not found:
            if done:
                # Left open: it was text.
                if out := acc.rstrip():
                    content.append(out)
                self._consume("", trim=False, state="content")
            return False
        at, tag = min(found)
        rest = acc[at + len(tag) :]
        if tag == USER_CLOSE:
            call = _user_call(acc[inside:at], self._functions)
            if call is not None:
                calls.append(self._numbered(*call))
                self._consume(rest, trim=True, state="content")
            else:
                content.append(acc[: at + len(tag)])
                self._consume(rest, trim=False, state="content")
        elif tag == TOOL_OPEN:
            if before := acc[:at].rstrip():
                content.append(before)
            self._consume(rest, trim=False, state="tool")
        else:
            content.append(acc[:at])
            self._consume(rest, trim=True, state="thinking")
        return True

    def _eat_json(self, content: list[str], calls: list[ToolCall], done: bool) -> bool:
        acc = self._buffer
        close = -1
        scanner, new = self._scanner, acc[self._scanned :]
        if not (scanner.in_string or scanner.escaped or '"' in new or "\\" in new):
            # No string in what came: unless it closes as many brackets as are open, count
            # them at once (an object nested a million deep comes a bracket at a time).
            closing = new.count("}") + new.count("]")
            if closing < self._depth:
                self._depth += new.count("{") + new.count("[") - closing
                self._scanned = len(acc)
                new = ""
        for i in self._scanner.brackets(acc, self._scanned) if new else ():
            self._depth += 1 if acc[i] in "[{" else -1
            if self._depth == 0:
                close = i + 1
                break
        else:
            self._scanned = len(acc)
        if close == -1 and not done:
            return False
        obj = acc[self._open : close] if close != -1 else acc[self._open :]
        if '"name"' in obj or '"arguments"' in obj:
            if close == -1:  # it never closed: no JSON (and no need to read it to know)
                raise ParseError("failed to parse Laguna JSON tool call: unexpected end of JSON"
                                 " input")  # fmt: skip
            calls.append(self._numbered(*_read_call(obj, self._functions)))
            self._consume(acc[close:] if close != -1 else "", trim=True, state="content")
            return close != -1
        if close == -1:
            if out := acc.rstrip():
                content.append(out)
            self._consume("", trim=False, state="content")
            return False
        # An object that calls nothing is answer text.
        content.append(acc[:close])
        self._consume(acc[close:], trim=False, state="content")
        return True


class PoolsideV1Parser(LagunaParser):
    """Ollama's `poolside-v1` (its Laguna v8): the prompt closes every assistant turn and opens
    a new one, so a final assistant message is no prefill."""

    _CONTINUES_PREFILL = False


def _resolve(name: str, functions: Mapping[str, Any]) -> tuple[str, bool]:
    """The offered tool `name` means, and whether there is one."""
    if name in functions:
        return name, True
    alias = _ALIASES.get(name)
    if alias is not None and alias in functions:
        return alias, True
    return name, False


def _clean(raw: str) -> str:
    """A call's text without the tags a model repeats: `<tool_call>`s before it, all from a
    `</tool_call>` on, and a second call (that one's text, when this one has none)."""
    raw = raw.strip()
    pos = 0
    while raw.startswith(TOOL_OPEN, pos):
        pos = _BLANKS.match(raw, pos + len(TOOL_OPEN)).end()  # type: ignore[union-attr]
    raw = raw[pos:]
    if (close := raw.find(TOOL_CLOSE)) != -1:
        raw = raw[:close].strip()
    if (second := raw.find(TOOL_OPEN)) != -1:
        if before := raw[:second].strip():
            return before
        raw = raw[second + len(TOOL_OPEN) :].strip()
    return raw


def _json_fields(raw: str) -> tuple[Any, Any]:
    """`name` and `arguments` of a JSON call as Go's json.Unmarshal fills Ollama's struct
    (names in any case); a DecodeError where Go's fails."""
    data = loads_text(raw)
    fields: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key.lower() in ("name", "arguments"):
                fields[key.lower()] = value
    elif data is not None:
        raise DecodeError(f"cannot unmarshal {type(data).__name__} into a tool call")
    name, arguments = fields.get("name"), fields.get("arguments")
    if name is not None and not isinstance(name, str):
        raise DecodeError("cannot unmarshal the name: not a string")
    if arguments is not None and not isinstance(arguments, dict):
        raise DecodeError("cannot unmarshal the arguments: not an object")
    return name or "", arguments or {}


def _read_call(raw: str, functions: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A call's name and arguments from its text, or Ollama's error."""
    raw = _clean(raw)
    if raw.startswith("{"):
        try:
            name, arguments = _json_fields(raw)
        except DecodeError as exc:
            raise ParseError(f"failed to parse Laguna JSON tool call: {exc}") from None
        if not name:
            raise ParseError("empty Laguna tool call name")
        return _resolve(name, functions)[0], arguments
    if (cut := raw.find(ARG_KEY)) == -1:
        cut = raw.find("{")
    name, args = (raw[:cut], raw[cut:]) if cut != -1 else (raw, "")
    name = _resolve(name.strip(), functions)[0]
    if args.strip().startswith("{"):
        try:
            return name, tool_arguments(args.strip())
        except DecodeError as exc:
            raise ParseError(f"failed to parse Laguna JSON tool call arguments: {exc}") from None
    function = functions.get(name)
    typed: dict[str, Any] = {}
    for key, value in _pairs(args):
        key = key.strip()
        typed[key] = _typed(value.removeprefix("\n").removesuffix("\n"), _types(function, key))
    return name, typed


def _pairs(text: str) -> Iterator[tuple[str, str]]:
    """Each `<arg_key>K</arg_key> <arg_value>V</arg_value>` of `text` as Go's regexp finds them
    (a key runs to the first `</arg_key>` a value follows), each character read about once."""
    pos = 0
    while (key := text.find(ARG_KEY, pos)) != -1:
        start = key + len(ARG_KEY)
        close, between = text.find(ARG_KEY_CLOSE, start), None
        while close != -1 and (between := _KEY_TO_VALUE.match(text, close)) is None:
            close = text.find(ARG_KEY_CLOSE, close + 1)
        if between is None:
            return  # no key from here on has a value
        end = text.find(ARG_VALUE_CLOSE, between.end())
        if end == -1:
            return
        yield text[start:close], text[between.end() : end]
        pos = end + len(ARG_VALUE_CLOSE)


def _call_name(raw: str) -> str:
    """The name a `<user>` block's call gives (its first line's, or its JSON's)."""
    raw = _clean(raw)
    if raw.startswith("{"):
        try:
            name, _ = _json_fields(raw)
        except DecodeError:
            return ""
        return str(name).strip()
    end = raw.find(ARG_KEY)
    if end == -1:
        end = raw.find("{")
    if end == -1:
        end = min((at for at in (raw.find("\r"), raw.find("\n")) if at != -1), default=-1)
    return (raw[:end] if end != -1 else raw).strip()


def _user_call(
    raw: str, functions: Mapping[str, Mapping[str, Any]]
) -> tuple[str, dict[str, Any]] | None:
    """The call a `<user>` block holds, if it names an offered tool and reads."""
    name = _call_name(raw)
    if not name or not _resolve(name, functions)[1]:
        return None
    try:
        return _read_call(raw, functions)
    except ParseError:
        return None
