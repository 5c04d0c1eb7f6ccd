"""Cohere's output (North, Command A 2026), as Ollama's built-in `cohere` parser reads it. The
prompt ends inside `<|START_THINKING|>` when the model reasons, so the output starts in the
thinking, up to `<|END_THINKING|>`; then blocks: `<|START_TEXT|>answer<|END_TEXT|>` (or the
older `<|START_RESPONSE|>`/`<|END_RESPONSE|>`), and `<|START_ACTION|>[...]<|END_ACTION|>`, a
JSON array of `{"tool_call_id", "tool_name", "parameters"}`. Text outside a block is answer.

Ollama never fails on a call: a broken array is read object by object, and what does not read
is logged and left out.

Where Ollama's answer depends on how the output was cut into pieces, this parser gives the
answer Ollama gives one token a piece: a block opens only where the text between blocks
starts with its tag (Ollama, given the text whole, also finds a tag further on and drops what
precedes it), and text ends at the first of its closing tags (whole, Ollama prefers
`<|END_TEXT|>` wherever it lies).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.gocompat.decode import DecodeError, loads_text
from trio_ollama.parsers.tagged import Holdback, PrefillingParser, TagSearch
from trio_ollama.templates import ToolCall, thinks

__all__ = ["CohereParser"]

log = logging.getLogger(__name__)

END_THINKING = "<|END_THINKING|>"
START_TEXT, END_TEXT = "<|START_TEXT|>", "<|END_TEXT|>"
START_RESPONSE, END_RESPONSE = "<|START_RESPONSE|>", "<|END_RESPONSE|>"
START_ACTION, END_ACTION = "<|START_ACTION|>", "<|END_ACTION|>"
END_OF_TURN = "<|END_OF_TURN_TOKEN|>"

# What may open the next block, and the state it leads to (None: the turn's end, skipped).
_OPENERS = {
    START_TEXT: "content",
    START_RESPONSE: "content",
    START_ACTION: "action",
    END_OF_TURN: None,
}
_CLOSERS = (END_TEXT, END_RESPONSE, END_OF_TURN)
_CLOSER = re.compile("|".join(re.escape(tag) for tag in _CLOSERS))
_HOLD_THINKING = Holdback(END_THINKING)
_HOLD_CONTENT = Holdback(*_CLOSERS, blanks=False)
# A whole string (skipped), a run of braces, or a quote that opens a string never closed.
_STRING_OR_BRACES = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|\{+|\}+|"', re.DOTALL)


class CohereParser(PrefillingParser):
    preserved_tokens: ClassVar[tuple[str, ...]] = (
        "<|START_THINKING|>",
        END_THINKING,
        START_TEXT,
        END_TEXT,
        START_ACTION,
        END_ACTION,
        START_RESPONSE,
        END_RESPONSE,
    )
    has_tool_support = True
    has_thinking_support = True
    # Blanks at the thinking's end are held; the answer's stream.
    _HOLDS_BLANKS = ("thinking",)

    def __init__(self) -> None:
        self._state = "thinking"  # "awaiting" (between blocks), "content", "action"
        self._buffer = ""
        self._blanks_held = True
        self._index = 0
        self._end_thinking = TagSearch(END_THINKING)
        self._end_action = TagSearch(END_ACTION)
        self._searches = (self._end_thinking, self._end_action)

    def _start(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        if think is None or thinks(think):  # the template reasons unless told not to
            self._state = "thinking"
        else:
            self._state = "awaiting"

    def _eat(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> bool:
        acc = self._buffer
        if not acc:
            return False
        if self._state == "thinking":
            end = self._end_thinking.find(acc)
            if end != -1:
                if before := acc[:end].rstrip():
                    thinking.append(before)
                self._consume(acc[end + len(END_THINKING) :], trim=False, state="awaiting")
                return True
            # What is held at the end (a tag's start, blanks) never shows if the output ends.
            out, self._buffer = _HOLD_THINKING.split(acc)
            self._end_thinking.reset()
            if out:
                thinking.append(out)
            return False
        if self._state == "awaiting":
            # Blanks between blocks never show: drop them as they come.
            trimmed = acc.lstrip()
            for tag, state in _OPENERS.items():
                if trimmed.startswith(tag):
                    self._consume(trimmed[len(tag) :], trim=False, state=state or "awaiting")
                    return True
            self._buffer = trimmed
            if not trimmed or (not done and any(t.startswith(trimmed) for t in _OPENERS)):
                return False
            # No tag opens here: it is answer text, which streams rather than waits.
            self._state = "content"
            return True
        if self._state == "content":
            # The answer streams as it comes: only a closing tag's start is held back, so the
            # buffer stays short and is searched whole.
            if (close := _CLOSER.search(acc)) is not None:
                if acc[: close.start()]:
                    content.append(acc[: close.start()])
                self._consume(acc[close.end() :], trim=False, state="awaiting")
                return True
            out, self._buffer = (acc, "") if done else _HOLD_CONTENT.split(acc)
            if out:
                content.append(out)
            return False
        # "action": the calls' JSON up to the closing tag; at the end, what came of it.
        end = self._end_action.find(acc)
        if end == -1 and not done:
            return False
        payload = acc if end == -1 else acc[:end]
        for name, arguments in _actions(payload):
            calls.append(self._numbered(name, arguments))
        if end == -1:
            self._buffer = ""
            return False
        self._consume(acc[end + len(END_ACTION) :], trim=False, state="awaiting")
        return True


# The fields of a call as Go's json.Unmarshal fills Ollama's struct (names in any case).
_FIELDS = {"tool_call_id": str, "tool_name": str, "parameters": dict}


def _call(value: Any) -> tuple[str, dict[str, Any]] | None:
    """A call object as Ollama's struct takes it: its name and arguments, or None where Go
    refuses a value's type (JSON null leaves a field empty)."""
    if value is None:
        return "", {}
    if not isinstance(value, dict):
        return None
    fields: dict[str, Any] = {}
    for key, field in value.items():
        kind = _FIELDS.get(key.lower())
        if kind is None:
            continue
        if field is not None and not isinstance(field, kind):
            return None
        fields[key.lower()] = field
    return fields.get("tool_name") or "", fields.get("parameters") or {}


def _actions(payload: str) -> list[tuple[str, dict[str, Any]]]:
    """The calls in an action block: the array as a whole, or when that fails (a comma
    missing, a value unquoted), each top-level object that reads on its own."""
    payload = payload.strip()
    if not payload or payload == "null":
        return []
    whole: Any = None
    if payload.startswith("[") and payload.endswith("]"):  # else it is no array
        try:
            whole = loads_text(payload)
        except DecodeError:
            pass
    if isinstance(whole, list):
        read = [_call(item) for item in whole]
        if all(r is not None for r in read):
            return [r for r in read if r is not None]
    out = []
    for text in _objects(payload):
        reason = "a field of the wrong type"
        try:
            call = _call(loads_text(text))
        except DecodeError as exc:
            call, reason = None, str(exc)
        if call is None:
            shown = text if len(text) <= 200 else text[:200] + "…"
            log.warning("cohere action parsing failed: %s: %s", reason, shown)
            continue
        out.append(call)
    return out


def _objects(text: str) -> Iterator[str]:
    """The balanced top-level `{...}` of `text`, braces in strings not counted (a backslash
    escapes only within a string, as Ollama's scanner has it)."""
    depth, start = 0, 0
    for match in _STRING_OR_BRACES.finditer(text):
        run = match.group()
        if run == '"':  # a string left open: no object closes after it
            return
        if run[0] == "{":
            if depth == 0:
                start = match.start()
            depth += len(run)
        elif run[0] == "}" and depth > 0:
            if len(run) < depth:
                depth -= len(run)
            else:  # closers past the object's end close nothing
                yield text[start : match.start() + depth]
                depth = 0
