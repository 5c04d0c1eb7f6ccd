"""Tool calls in a model's output, in the shape its template writes them (Ollama's `tools/`).

The template's `{{ if .ToolCalls }}` section says how the model was taught to call tools: the
first text in it, cut before any `{`, is the tag that opens calls (`<tool_call>`,
`[TOOL_CALLS]`); with no such text the tag is `{`, and any JSON object may be a call. After the
tag, each JSON object naming one of the offered tools is a call; its arguments are the object's
`arguments` or `parameters` (an object, or a string holding one).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trio_ollama.gocompat.decode import BracketScanner, DecodeError, loads_text
from trio_ollama.gocompat.template import (
    ActionNode,
    BranchNode,
    FieldNode,
    GoTemplate,
    Node,
    TextNode,
)
from trio_ollama.parsers.buffered import Buffered
from trio_ollama.templates import ToolCall, ToolCallFunction

__all__ = ["ToolCallParser", "preserved_for_tag", "tool_call_tag"]


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


def preserved_for_tag(tag: str) -> tuple[str, ...]:
    """What of a template's tool-call tag the runner writes as text should it be a control
    token: the tag, or its leading `[...]`/`<...>` (Ollama keeps only strings that are one
    token, and `[TOOL_CALLS][` is a token and JSON's `[`); nothing for a bare bracket."""
    if tag in ("", "{", "["):
        return ()
    close = {"[": "]", "<": ">"}.get(tag[0])
    end = tag.find(close) if close else -1
    return (tag[: end + 1],) if end > 0 else (tag,)


def _json_object(text: str) -> dict[str, Any] | None:
    """`text` as Go's `json.Unmarshal` into a map reads it, or None: what Go refuses (NaN, a
    number past a float64's range) and what Python could not follow (nesting past
    `MAX_DEPTH`) is no call, only text, as Ollama treats JSON it cannot read."""
    try:
        data = loads_text(text)
    except DecodeError:
        return None
    return data if isinstance(data, dict) else None


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


def _common_prefix(a: str, b: str) -> int:
    """How many characters `a` and `b` begin with alike (slices compared in halves, so a long
    name costs a few comparisons, not one step a character)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class _Names:
    """The offered tool names, sorted, for the two questions the parser asks of the text at one
    position: the longest name that starts there, and whether a longer name may still start
    there when more text comes. Each costs a few binary searches, whatever the number of tools
    (Ollama's `findTool` tries every name against the whole buffer for every piece)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.sorted = sorted(set(names))
        self.longest = max(map(len, self.sorted), default=0)
        # What a position's first two characters must be for a name to start there (or its
        # first, at the end of the text): a set lookup rules out most positions. With an empty
        # name offered, every position begins one.
        self._anywhere = "" in self.sorted
        self._heads = frozenset(n[:k] for n in self.sorted for k in (1, 2) if n)
        self._singles = frozenset(n for n in self.sorted if len(n) == 1)
        # The names form a tree by "is the longest name that is a prefix of": `_up[k][i]` is
        # the 2**k-th ancestor of `sorted[i]` (-1: none), for the climb in `longest_at`.
        parent: list[int] = []
        chain: list[int] = []  # the previous name's ancestors and itself (sorted order)
        for i, name in enumerate(self.sorted):
            while chain and not name.startswith(self.sorted[chain[-1]]):
                chain.pop()
            parent.append(chain[-1] if chain else -1)
            chain.append(i)
        self._up = [parent]
        while any(j != -1 for j in self._up[-1]):
            below = self._up[-1]
            self._up.append([-1 if j == -1 else below[j] for j in below])

    def may_begin(self, head: str) -> bool:
        """Whether text whose first two characters (or only one) are `head` may begin a name."""
        return self._anywhere or head in self._heads or head[:1] in self._singles

    def longest_at(self, text: str) -> str | None:
        """The longest name that `text` begins with."""
        names = self.sorted
        i = bisect_right(names, text) - 1
        if i < 0:
            return None
        if text.startswith(names[i]):
            return names[i]
        # names[i] is the greatest name up to `text` and not its prefix: the longest that is
        # must be a prefix of what the two share, so one of names[i]'s ancestors: the nearest
        # no longer than that. Climb past the longer ones in jumps of powers of two.
        shared = _common_prefix(names[i], text)
        for level in reversed(self._up):
            j = level[i]
            if j != -1 and len(names[j]) > shared:
                i = j
        i = self._up[0][i]
        return None if i == -1 else names[i]

    def extends(self, text: str) -> bool:
        """Whether a name longer than `text` begins with it."""
        names = self.sorted
        i = bisect_right(names, text)
        return i < len(names) and names[i].startswith(text)


def _find_tag(buffer: str, tag: str) -> tuple[int, bool]:
    """Where the tag begins in `buffer` (True), or where what may be its start does (False)."""
    i = buffer.find(tag)
    if i > -1:
        return i, True
    for n in range(min(len(buffer), len(tag)), 0, -1):
        if buffer.endswith(tag[:n]):
            return len(buffer) - n, False
    return -1, False


# The tags that are a bare bracket: the output is over when the bracket that opened it closes.
_PAIRS = {"{": "{}", "[": "[]"}


class ToolCallParser(Buffered):
    """Streams content through, holds back what may be a tool call, and returns each call once
    its JSON is complete. `index` counts calls from 0; ids are the caller's to give.

    Ollama's `tools.Parser` reads the whole buffer again for every piece (each name searched
    for, each object decoded again); this one keeps where each search stopped, so a piece costs
    about its own length (a set lookup a position, a binary search in the names where one may
    begin, and one more look at a name still being written), whatever the buffer's length or
    the number of tools. Text is read again only after a call that ends before where the scan
    had got to (the output's bracket, for a bare `{` or `[` tag, is followed to the end).
    """

    def __init__(self, tag: str, tools: Sequence[Mapping[str, Any]]) -> None:
        self.tag = tag
        self._names = _Names(str((t.get("function") or {}).get("name", "") or "") for t in tools)
        self._pair = _PAIRS.get(tag)
        self._state = "looking"  # then "calling", then "done"
        self._held = ""  # while looking: what may be the start of the tag
        self._count = 0
        # While calling: all output from the tag on; what is not a call yet starts at `_start`.
        self._buffer = ""
        self._start = 0
        # The search for the next call, kept between pieces. Positions before `_tail` cannot
        # begin a name that is still being written; before `_seek`, no name begins.
        self._tail = self._seek = 0
        self._match: tuple[int, str] | None = None
        self._stuck = False
        # The objects in the buffer: the scanner's place, the `{` depth there (Ollama's, never
        # below 0) and where the open object began; objects complete but not decoded yet; the
        # first that is JSON, with its end. For a bracket tag, that bracket's depth.
        self._scanner = BracketScanner()
        self._scanned = 0
        self._depth = 0
        self._object_start = 0
        self._objects: deque[tuple[int, int]] = deque()
        self._first: tuple[dict[str, Any], int] | None = None
        self._pair_depth = 0
        self._closed = False

    def add(self, text: str) -> tuple[list[ToolCall], str]:
        """The calls completed by `text`, and the content that can go to the client now."""
        if self._state == "done":
            return [], text
        content = ""
        if self._state == "looking":
            held = self._held + text
            i, found = _find_tag(held, self.tag)
            content, held = (held, "") if i == -1 else (held[:i], held[i:])
            # With a bare `{` or `[` tag, only output that starts with one can be a call.
            if self._pair is not None and content.strip():
                self._state, self._held = "done", ""
                return [], content + held
            if not found:
                self._held = held
                return [], content
            self._state, self._held, self._buffer = "calling", "", held
        else:
            self._append(text)
        calls: list[ToolCall] = []
        while (call := self._next_call()) is not None:
            calls.append(call)
        if self._pair is not None:
            self._scan(to_end=True)
            if self._closed:
                self._state = "done"
                content = self._buffer[self._start :]
                self._buffer, self._start = "", 0
        return calls, content

    def content(self) -> str:
        """At the end: what is left to show, when the output held no call after all."""
        if self._count > 0 or self._pair is None:
            return ""
        return self._buffer[self._start :]

    def _next_call(self) -> ToolCall | None:
        if self._stuck or (found := self._find_tool()) is None:
            return None
        start, name = found
        if (first := self._first_object()) is None:
            return None
        data, args_end = first
        args, has_args = _arguments_in(name, data)
        if not has_args:
            args = data
        if args is None:
            # The first name and the first object are final: no call can follow (Ollama
            # looks again at every piece, and finds the same).
            self._stuck = True
            return None
        call = ToolCall(function=ToolCallFunction(name=name, arguments=args, index=self._count))
        self._count += 1
        self._take(max(start + len(name), args_end))
        return call

    def _find_tool(self) -> tuple[int, str] | None:
        """The offered name that occurs first in the buffer (the longest at one position);
        none while the buffer ends with what may be the start of a longer name."""
        buffer, end, names = self._buffer, len(self._buffer), self._names
        if self._start == end:
            return None
        # A position that once could not begin a longer name never can: only new ones are
        # tried, and the one that still may.
        self._tail = max(self._tail, self._start, end - names.longest + 1)
        while self._tail < end:
            tail = buffer[self._tail : end]
            if names.may_begin(tail[:2]) and names.extends(tail):
                return None
            self._tail += 1
        if self._match is None:
            # With no name still being written, what begins at each position is final.
            pos = max(self._seek, self._start)
            while pos < end:
                if names.may_begin(buffer[pos : pos + 2]):
                    name = names.longest_at(buffer[pos : pos + names.longest])
                    if name is not None:
                        self._match = (pos, name)
                        break
                pos += 1
            self._seek = pos
        return self._match

    def _first_object(self) -> tuple[dict[str, Any], int] | None:
        """The first complete object in the buffer that is JSON, and where it ends."""
        while self._first is None:
            if not self._objects and not self._scan(to_end=False):
                return None
            start, end = self._objects.popleft()
            data = _json_object(self._buffer[start:end])
            if data is not None:
                self._first = (data, end)
        return self._first

    def _scan(self, *, to_end: bool) -> bool:
        """Read brackets on from where the last scan stopped, up to the next complete object
        (or the end); whether an object was completed."""
        buffer, pair = self._buffer, self._pair
        for i in self._scanner.brackets(buffer, self._scanned):
            ch = buffer[i]
            if pair is not None and not self._closed:
                if ch == pair[0]:
                    self._pair_depth += 1
                elif ch == pair[1]:
                    self._pair_depth -= 1
                    self._closed = self._pair_depth == 0
            if ch == "{":
                if self._depth == 0:
                    self._object_start = i
                self._depth += 1
            elif ch == "}" and self._depth > 0:
                self._depth -= 1
                if self._depth == 0:
                    self._objects.append((self._object_start, i + 1))
                    if not to_end:
                        self._scanned = i + 1
                        return True
        self._scanned = len(buffer)
        return False

    def _take(self, end: int) -> None:
        """A call took the buffer up to `end`: what follows is read as if the output began
        there (read again if the scan had gone past it)."""
        self._start = end
        self._tail = max(self._tail, end)
        self._seek = max(self._seek, end)
        self._match = None
        self._scanner = BracketScanner()
        self._scanned = end
        self._depth = self._pair_depth = 0
        self._objects.clear()
        self._first = None
        self._closed = False
