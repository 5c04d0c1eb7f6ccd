"""Tool calls in a model's output, in the shape its template writes them (Ollama's `tools/`).

The template's `{{ if .ToolCalls }}` section says how the model was taught to call tools: the
first text in it, cut before any `{`, is the tag that opens calls (`<tool_call>`,
`[TOOL_CALLS]`); with no such text the tag is `{`, and any JSON object may be a call. After the
tag, each JSON object naming one of the offered tools is a call; its arguments are the object's
`arguments` or `parameters` (an object, or a string holding one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from trio_ollama.gocompat.template import (
    ActionNode,
    BranchNode,
    FieldNode,
    GoTemplate,
    Node,
    TextNode,
)
from trio_ollama.templates import ToolCall, ToolCallFunction

__all__ = ["ToolCallParser", "tool_call_tag"]


def _is_tool_calls_if(node: BranchNode) -> bool:
    return node.kind == "if" and any(
        isinstance(arg, FieldNode) and "ToolCalls" in arg.idents
        for cmd in node.pipe.cmds
        for arg in cmd.args
    )


def _find_tool_calls_if(nodes: Sequence[Node]) -> BranchNode | None:
    for node in nodes:
        if not isinstance(node, BranchNode):
            continue
        if _is_tool_calls_if(node):
            return node
        for body in (node.list, node.else_list):
            if body is not None and (found := _find_tool_calls_if(body)) is not None:
                return found
    return None


def _first_text(nodes: Sequence[Node]) -> TextNode | None:
    """The first text that is not blank; an action, or a branch without such text, ends the
    search (Ollama's walk, which must not read text written after the calls)."""
    for node in nodes:
        if isinstance(node, TextNode):
            if node.text.strip():
                return node
        elif isinstance(node, BranchNode):
            for body in (node.list, node.else_list):
                if body is not None and (found := _first_text(body)) is not None:
                    return found
            return None
        elif isinstance(node, ActionNode):
            return None
    return None


def tool_call_tag(template: GoTemplate | None) -> str:
    """The text that opens a tool call in this template's output, or `{`."""
    if template is None:
        return "{"
    section = _find_tool_calls_if(template.root)
    if section is None:
        return "{"
    text = _first_text(section.list)
    if text is None:
        return "{"
    tag = text.text.replace("\r\n", "\n").partition("{")[0].strip()
    return tag or "{"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _object_spans(buffer: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each balanced top-level `{...}` in `buffer`, strings and escapes
    respected; an unbalanced `}` is ignored."""
    start = -1
    depth = 0
    in_string = escaped = False
    for i, c in enumerate(buffer):
        if escaped:
            escaped = False
            continue
        if c == "\\":
            escaped = True
            continue
        if c == '"':
            in_string = not in_string
            continue
        if in_string:
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start != -1:
                yield start, i + 1
                start = -1
            depth = max(depth, 0)


def _arguments_in(name: str, obj: Mapping[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """Ollama's search for a call's arguments inside one decoded object: found is True with
    None arguments when the object names a function but carries no usable arguments."""

    def member(key: str) -> dict[str, Any] | None:
        value = obj.get(key)
        if isinstance(value, dict):
            return value
        if isinstance(value, str):
            return _json_object(value)
        return None

    if "name" in obj:
        for key in ("arguments", "parameters"):
            if (args := member(key)) is not None:
                return args, True
        return None, True
    if (args := member(name)) is not None:
        return args, True
    for value in obj.values():
        children = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
        for child in children:
            if isinstance(child, dict):
                args, found = _arguments_in(name, child)
                if found:
                    return args, True
    return None, False


def _find_arguments(name: str, buffer: str) -> tuple[dict[str, Any] | None, int]:
    for start, end in _object_spans(buffer):
        data = _json_object(buffer[start:end])
        if data is None:
            continue  # not JSON: keep looking
        args, found = _arguments_in(name, data)
        return (args if found else data), end
    return None, 0


def _find_tool(names: Sequence[str], buffer: str) -> tuple[str | None, int]:
    """The offered name that occurs first in `buffer` (the longest at one position), and where
    it ends; none while the buffer ends with what may be the start of a longer name."""
    if not buffer:
        return None, 0
    longest = max((len(n) for n in names), default=0)
    for i in range(1, min(len(buffer), longest) + 1):
        tail = buffer[-i:]
        if any(len(tail) < len(n) and n.startswith(tail) for n in names):
            return None, 0
    found: str | None = None
    start = end = -1
    for n in names:
        pos = buffer.find(n)
        if pos == -1:
            continue
        if found is not None and (pos > start or (pos == start and len(n) <= len(found))):
            continue
        found, start, end = n, pos, pos + len(n)
    return (found, end) if found is not None else (None, 0)


class ToolCallParser:
    """Streams content through, holds back what may be a tool call, and returns each call once
    its JSON is complete. `index` counts calls from 0; ids are the caller's to give."""

    def __init__(self, tag: str, tools: Sequence[Mapping[str, Any]]) -> None:
        self.tag = tag
        self._names = [str((t.get("function") or {}).get("name", "") or "") for t in tools]
        self._state = "looking"  # then "calling", then "done"
        self._buffer = ""
        self._count = 0

    def _find_tag(self) -> tuple[int, bool]:
        i = self._buffer.find(self.tag)
        if i > -1:
            return i, True
        for n in range(min(len(self._buffer), len(self.tag)), 0, -1):
            if self._buffer.endswith(self.tag[:n]):
                return len(self._buffer) - n, False
        return -1, False

    def add(self, text: str) -> tuple[list[ToolCall], str]:
        """The calls completed by `text`, and the content that can go to the client now."""
        if self._state == "done":
            return [], text
        self._buffer += text
        content = ""
        if self._state == "looking":
            i, found = self._find_tag()
            if i == -1:
                content, self._buffer = self._buffer, ""
            else:
                content, self._buffer = self._buffer[:i], self._buffer[i:]
            # With a bare `{` or `[` tag, only output that starts with one can be a call.
            if self.tag in ("{", "[") and content.strip():
                self._state = "done"
                out, self._buffer = content + self._buffer, ""
                return [], out
            if not found:
                return [], content
            self._state = "calling"
        elif "}" not in text and "]" not in text:
            # A call's JSON, or the opening bracket, can only close on a closing bracket: the
            # buffer is not scanned again for pieces without one (it may be long: a file
            # written through a tool call).
            return [], content
        calls: list[ToolCall] = []
        while (call := self._next_call()) is not None:
            calls.append(call)
        if self._closed():
            self._state = "done"
            content, self._buffer = self._buffer, ""
        return calls, content

    def _next_call(self) -> ToolCall | None:
        name, end = _find_tool(self._names, self._buffer)
        if name is None:
            return None
        args, args_end = _find_arguments(name, self._buffer)
        if args is None:
            return None
        call = ToolCall(ToolCallFunction(name=name, arguments=args, index=self._count))
        self._count += 1
        self._buffer = self._buffer[max(end, args_end) :]
        return call

    def _closed(self) -> bool:
        """With a `{` or `[` tag: whether the bracket that opened the output has closed."""
        pair = {"{": "{}", "[": "[]"}.get(self.tag)
        if pair is None:
            return False
        depth = 0
        in_string = escaped = False
        for c in self._buffer:
            if escaped:
                escaped = False
                continue
            if c == "\\":
                escaped = True
                continue
            if c == '"':
                in_string = not in_string
                continue
            if in_string:
                continue
            if c == pair[0]:
                depth += 1
            elif c == pair[1]:
                depth -= 1
                if depth == 0:
                    return True
        return False

    def content(self) -> str:
        """At the end: what is left to show, when the output held no call after all."""
        if self._count > 0:
            return ""
        return self._buffer if self.tag in ("{", "[") else ""
