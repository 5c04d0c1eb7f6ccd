"""Gemma 4's output, as Ollama's `gemma4` and `gemma4-no-thinking` parsers read it: thinking in
`<|channel>thought\\n...<channel|>`, answer text, and calls `<|tool_call>call:NAME{key:value,...}
<tool_call|>` whose keys are bare and whose strings sit between `<|"|>` marks.

The arguments become JSON by quoting the keys and the marked strings; what then fails to read
gets Ollama's few repairs (single-quoted values, an unclosed string mark, a raw string where the
tool's schema says string). A call that still cannot be read is dropped with a warning, as
Ollama drops it: never a ParseError. Thinking the request did not ask for is dropped too.

Ollama's parser picks a thinking tag anywhere in what it holds before an earlier call tag, and
keeps blanks that came in an earlier piece; here the earlier tag wins and blanks before a tag
are held back, so the output reads the same however the runner cuts it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import loads_text
from trio_ollama.parsers.buffered import Buffered, _release
from trio_ollama.parsers.qwen3 import _more_blanks
from trio_ollama.parsers.tagged import TagSearch
from trio_ollama.templates import Message, ToolCall, thinks

__all__ = [
    "Gemma4Parser",
    "args_to_json",
    "close_object",
    "close_string",
    "parse_call",
    "raw_string_value",
    "repair_candidates",
    "single_quoted_values",
]

log = logging.getLogger(__name__)

THINK_OPEN, THINK_CLOSE = "<|channel>", "<channel|>"
CALL_OPEN, CALL_CLOSE = "<|tool_call>", "<tool_call|>"
RESPONSE = "<|tool_response>"
QUOTE = '<|"|>'
CHANNEL_NAME = "thought\n"

_QUOTED = re.compile(r'<\|"\|>(.*?)<\|"\|>', re.DOTALL)
_SLOT = re.compile("\x00(.)\x00", re.DOTALL)
_QUOTE_MARKS = re.compile(r'<\|"\|>|[":]')
_VALUE_MARKS = re.compile(r'<\|"\|>|["{,]')


class _Ends:
    """Where a quoted run that opens at a given place ends, for one text. A run that never
    ends makes every later one never end too (the escapes read the same from there), so after
    the first such run the answer is known without reading on: each text is read about once,
    not once per quote (`"\\"\\"\\"...`)."""

    def __init__(self, text: str, quote: str) -> None:
        self._text = text
        self._run = _RUNS[quote]
        self._endless = len(text)

    def end(self, start: int) -> int:
        """Past the quote that closes the run opened at `start`, or -1."""
        if start >= self._endless:
            return -1
        match = self._run.match(self._text, start + 1)
        if match is None:
            self._endless = start
            return -1
        return match.end()


# A run up to its closing quote: a backslash escapes the character after it.
_RUNS = {q: re.compile(rf"[^{q}\\]*+(?:\\.[^{q}\\]*+)*+{q}", re.DOTALL) for q in "\"'"}


def _skip_space(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i


def _key_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and (text[i] == "_" or text[i].isalpha() or text[i].isdecimal()):
        i += 1
    return i


def _quote_bare_keys(text: str) -> str:
    """A `"` around each bare key after `{` or `,`; JSON strings are left alone."""
    out: list[str] = []
    ends = _Ends(text, '"')
    i = 0
    while (at := text.find('"', i)) != -1:
        out.append(_BARE_KEY.sub(_quoted_key, text[i:at]))
        end = ends.end(at)
        if end == -1:
            # No quote after this one closes a string: they are all plain text.
            out.append('"' + _BARE_KEY.sub(_quoted_key, text[at + 1 :]))
            return "".join(out)
        out.append(text[at:end])
        i = end
    out.append(_BARE_KEY.sub(_quoted_key, text[i:]))
    return "".join(out)


# A key after `{` or `,` and blanks, right before its `:` (`\w`, wider than Go's letters,
# digits and `_`, is narrowed in `_quoted_key`).
_BARE_KEY = re.compile(r"([{,]\s*)(\w+)(?=:)")


def _quoted_key(match: re.Match[str]) -> str:
    key = match.group(2)
    if not key.isascii() and _key_end(key, 0) < len(key):
        return match.group()  # a character Go reads as no part of a key: not a key
    return f'{match.group(1)}"{key}"'


def args_to_json(text: str) -> str:
    """Ollama's `gemma4ArgsToJSON`: marked strings become JSON strings, bare keys quoted."""
    strings: list[str] = []

    def slot(match: re.Match[str]) -> str:
        strings.append(match.group(1))
        code = len(strings) - 1
        # Go's string(rune(i)): a code point that cannot be one is U+FFFD.
        mark = chr(code) if code < 0xD800 or 0xDFFF < code <= 0x10FFFF else "\ufffd"
        return "\x00" + mark + "\x00"

    quoted = _quote_bare_keys(_QUOTED.sub(slot, text))
    if not strings:
        return quoted

    def fill(match: re.Match[str]) -> str:
        code = ord(match.group(1))
        if code < len(strings):
            return _json_string(strings[code])
        return match.group()

    return _SLOT.sub(fill, quoted)


def _json_string(value: str) -> str:
    # Only read back as JSON, so Go's HTML escapes would change nothing.
    return json.dumps(value, ensure_ascii=False)


# --- repairs, tried in order once strict reading fails ---------------------------------------


def close_string(text: str) -> str:
    """An odd `<|"|>` is closed: at the end, or before a final `}` or `]`."""
    if text.count(QUOTE) % 2 == 0:
        return text
    at = len(text.rstrip())
    if at > 0 and text[at - 1] in "}]":
        at -= 1
    return text[:at] + QUOTE + text[at:]


def close_object(text: str) -> str:
    if not text.lstrip().startswith("{"):
        return text
    end = len(text.rstrip())
    if end > 0 and text[end - 1] == "}":
        return text
    return text[:end] + "}" + text[end:]


def single_quoted_values(text: str) -> str:
    """`key:'value'` becomes `key:<|"|>value<|"|>` (a stray `<|"|>` after it dropped)."""
    out: list[str] = []
    json_ends, single_ends = _Ends(text, '"'), _Ends(text, "'")
    i, n = 0, len(text)
    while (match := _QUOTE_MARKS.search(text, i)) is not None:
        at = match.start()
        out.append(text[i:at])
        mark = match.group()
        if mark == QUOTE:
            close = text.find(QUOTE, at + len(QUOTE))
            if close == -1:
                out.append(text[at:])
                return "".join(out)
            i = close + len(QUOTE)
            out.append(text[at:i])
            continue
        if mark == '"':
            end = json_ends.end(at)
            i = end if end != -1 else at + 1
            out.append(text[at:i])
            continue
        i = _skip_space(text, at + 1)
        out.append(text[at:i])
        if i >= n or text[i] != "'":
            continue
        end = single_ends.end(i)
        if end == -1:
            continue
        out.append(QUOTE + text[i + 1 : end - 1] + QUOTE)
        i = end + len(QUOTE) if text.startswith(QUOTE, end) else end
    out.append(text[i:])
    return "".join(out)


def _types(prop: Mapping[str, Any]) -> list[str]:
    kind = prop.get("type")
    if kind is None:
        return []
    return [kind] if isinstance(kind, str) else [str(k) for k in kind]


def _accepts_string(prop: Mapping[str, Any]) -> bool:
    if any(t.lower() == "string" for t in _types(prop)):
        return True
    return any(_accepts_string(p or {}) for p in prop.get("anyOf") or ())


def _properties(name: str, tools: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for tool in tools:
        fn = tool.get("function") or {}
        if fn.get("name") == name:
            props = (fn.get("parameters") or {}).get("properties")
            return props if isinstance(props, Mapping) else None
    return None


def _value_starts(text: str, key: str) -> Iterator[int]:
    """Past the `:` of each `key` after a `{` or `,` outside strings, in order: one reading
    of `text` for all of them."""
    ends = _Ends(text, '"')
    i = 0
    while (match := _VALUE_MARKS.search(text, i)) is not None:
        at = match.start()
        mark = match.group()
        if mark == QUOTE:
            close = text.find(QUOTE, at + len(QUOTE))
            if close == -1:
                return
            i = close + len(QUOTE)
            continue
        if mark == '"':
            end = ends.end(at)
            i = end if end != -1 else at + 1
            continue
        i = at + 1
        key_start = _skip_space(text, at + 1)
        if not text.startswith(key, key_start):
            continue
        colon = _skip_space(text, key_start + len(key))
        if colon < len(text) and text[colon] == ":":
            i = colon + 1
            yield i


def _raw_value_end(text: str, start: int, props: Mapping[str, Any]) -> int:
    """Where a raw string value ends: before `,known_key:`, else before a final `}`."""
    n = len(text)
    comma = text.find(",", start)
    while comma != -1:
        key_start = _skip_space(text, comma + 1)
        key_end = _key_end(text, key_start)
        if key_end > key_start:
            colon = _skip_space(text, key_end)
            if colon < n and text[colon] == ":" and text[key_start:key_end] in props:
                return comma
        comma = text.find(",", comma + 1)
    end = len(text.rstrip())
    if end > start and text[end - 1] == "}":
        return end - 1
    return n


def _structured(text: str, at: int) -> bool:
    return text.startswith(QUOTE, at) or text[at] in "'\"{[-0123456789tfn"


def raw_string_value(text: str, name: str, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """A raw value of a string parameter marked as a string (only where the schema says so:
    raw text is otherwise too ambiguous)."""
    props = _properties(name, tools)
    if props is None:
        return None
    for key, prop in props.items():
        if not isinstance(prop, Mapping) or not _accepts_string(prop):
            continue
        for start in _value_starts(text, key):
            check = _skip_space(text, start)
            if check < len(text) and _structured(text, check):
                continue
            end = _raw_value_end(text, start, props)
            return text[:start] + QUOTE + text[start:end] + QUOTE + text[end:]
    return None


def repair_candidates(text: str, name: str, tools: Sequence[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []

    def add(candidate: str, always_close: bool) -> None:
        repaired = close_string(single_quoted_values(candidate))
        if always_close or repaired != candidate:
            repaired = close_object(repaired)
        if repaired not in out:
            out.append(repaired)

    add(text, False)
    if (raw := raw_string_value(text, name, tools)) is not None:
        add(raw, True)
    return out


def _object(text: str) -> dict[str, Any] | None:
    converted = args_to_json(text)
    try:
        # What Python's reader refuses Go's refuses too; it says so at C speed, before the
        # Go-faithful reading (a failed call gets several tries).
        json.loads(converted)
        value = loads_text(converted)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_call(text: str, tools: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Name and arguments of `call:NAME{...}`; ValueError where Ollama gives up on it."""
    if not text.startswith("call:"):
        raise ValueError("expected 'call:' prefix")
    brace = text.find("{", 5)
    if brace == -1:
        raise ValueError("expected '{' in tool call")
    name, args_text = text[5:brace].strip(), text[brace:]
    args = _object(args_text)
    if args is None:
        for candidate in repair_candidates(args_text, name, tools):
            if (args := _object(candidate)) is not None:
                break
        else:
            raise ValueError("repair failed to produce valid JSON arguments")
    return name, args


# What each state does with the buffer: whether to read on (the state changed).
_Step = Callable[[bool, list[str], list[str], list[ToolCall]], bool]


class Gemma4Parser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (
        THINK_OPEN,
        THINK_CLOSE,
        CALL_OPEN,
        CALL_CLOSE,
        RESPONSE,
        QUOTE,
    )

    has_tool_support = True

    def __init__(self, *, thinking: bool) -> None:
        self.has_thinking_support = thinking
        self._thinking = False  # thinking asked for and supported: shown, else dropped
        self._tools: Sequence[Mapping[str, Any]] = ()
        self._state = "content"
        self._buffer = ""
        self._blanks_held = True
        self._close = TagSearch(CALL_CLOSE)
        self._index = 0

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        self._tools = tools
        self._thinking = self.has_thinking_support and thinks(think)
        self._state = "content"
        self._buffer = ""
        self._blanks_held = True
        self._close.reset()
        self._index = 0

    def prefill(self, last: Message) -> None:
        # After a tool's answer the prompt reopens the thinking channel (see the renderer).
        if self._thinking and last.role == "tool":
            self._state = "thinking"

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        if not done and _more_blanks(self._blanks_held, text) and self._state in (
            "content", "thinking"):  # fmt: skip
            return "", "", []
        content: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        step: dict[str, _Step] = {"content": self._content, "thinking": self._thinking_text,
                "name": self._channel_name, "after": self._after_thinking,
                "call": self._call, "noise": self._noise}  # fmt: skip
        while self._buffer and step[self._state](done, content, thinking, calls):
            pass
        self._blanks_held = self._state in ("content", "thinking") and (
            not self._buffer or self._buffer.isspace()
        )
        return "".join(content), "".join(thinking) if self._thinking else "", calls

    def _content(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        acc = self._buffer
        think, call = acc.find(THINK_OPEN), acc.find(CALL_OPEN)
        if think != -1 or call != -1:
            if call == -1 or (think != -1 and think < call):
                at, self._state = think, "name"
                self._buffer = acc[think + len(THINK_OPEN) :]
            else:
                at, self._state = call, "call"
                self._buffer = acc[call + len(CALL_OPEN) :]
                self._close.reset()
            if before := acc[:at].rstrip():
                content.append(before)
            return True
        out, self._buffer = (acc, "") if done else _release(acc, THINK_OPEN, CALL_OPEN)
        content.append(out)
        return False

    def _channel_name(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        acc = self._buffer
        if acc.startswith(CHANNEL_NAME):
            self._buffer = acc[len(CHANNEL_NAME) :]
        elif not done and CHANNEL_NAME.startswith(acc):
            return False
        self._state = "thinking"
        return True

    def _thinking_text(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        acc = self._buffer
        close = acc.find(THINK_CLOSE)
        if close != -1:
            if before := acc[:close].rstrip():
                thinking.append(before)
            self._buffer = acc[close + len(THINK_CLOSE) :]
            self._state = "after"
            return True
        out, self._buffer = (acc, "") if done else _release(acc, THINK_CLOSE)
        thinking.append(out)
        return False

    def _after_thinking(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        self._buffer = self._buffer.lstrip()
        if not self._buffer:
            return False
        self._state = "content"
        return True

    def _call(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        acc = self._buffer
        close = self._close.find(acc)
        if close != -1:
            raw, self._buffer = acc[:close], acc[close + len(CALL_CLOSE) :]
            self._state = "noise"
        elif done:
            # A stop token may come before the closing tag: what came is the call.
            raw, self._buffer = acc, ""
            self._state = "content"
        else:
            return False
        try:
            name, args = parse_call(raw, self._tools)
        except ValueError as exc:
            log.warning("gemma4 tool call parsing failed: %s (%d characters)", exc, len(raw))
        else:
            calls.append(self._numbered(name, args))
        return self._state == "noise"

    def _noise(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        # Gemma 4 sometimes repeats `<tool_call|>` after a call, and the newer template ends
        # a call with `<|tool_response>`: neither is answer text. (An answer that begins
        # with one of them loses it, as in Ollama.)
        acc = self._buffer.lstrip()
        while True:
            for mark in (CALL_CLOSE, RESPONSE):
                if acc.startswith(mark):
                    acc = acc[len(mark) :].lstrip()
                    break
            else:
                break
        self._buffer = acc
        if not acc:
            return False
        if CALL_CLOSE.startswith(acc) or RESPONSE.startswith(acc):
            if done:
                self._buffer, self._state = "", "content"
            return False
        self._state = "content"
        return True
