"""Thinking in a model's output (Ollama's `thinking/`): the tags a template puts around
`.Thinking`, and a streaming parser that splits the text between them from the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trio_ollama.gocompat.template import (
    ActionNode,
    Arg,
    BranchNode,
    ChainNode,
    CommandNode,
    FieldNode,
    GoTemplate,
    Node,
    PipeNode,
    TemplateNode,
    TextNode,
)
from trio_ollama.parsers.buffered import Buffered

__all__ = ["ThinkingParser", "infer_thinking_tags"]

# What the walk's ancestors may be: a tree node, or a list of nodes (Go's ListNode).
_Visited = Node | Arg | CommandNode | tuple[Node, ...]


def _children(node: _Visited) -> Sequence[_Visited]:
    if isinstance(node, tuple):
        return node
    if isinstance(node, BranchNode):
        out: list[_Visited] = [node.pipe, node.list]
        if node.else_list is not None:
            out.append(node.else_list)
        return out
    if isinstance(node, ActionNode):
        return [node.pipe]
    if isinstance(node, TemplateNode):
        return [node.pipe] if node.pipe is not None else []
    if isinstance(node, PipeNode):
        return node.cmds
    if isinstance(node, CommandNode):
        return node.args
    if isinstance(node, ChainNode):
        return []  # Go's walk does not enter a chain's operand either
    return []


def _walk(node: _Visited, enter: Callable[[_Visited, list[_Visited]], None]) -> None:
    ancestors: list[_Visited] = []

    def visit(n: _Visited) -> None:
        ancestors.append(n)
        enter(n, ancestors)
        for child in _children(n):
            visit(child)
        ancestors.pop()

    visit(node)


def _range_over_messages(branch: BranchNode) -> bool:
    found = False

    def enter(n: _Visited, _: list[_Visited]) -> None:
        nonlocal found
        if isinstance(n, FieldNode) and n.idents[0] == "Messages":
            found = True

    _walk(branch.pipe, enter)
    return found


def infer_thinking_tags(template: GoTemplate | None) -> tuple[str, str]:
    """Ollama's `InferTags`: for each `.Thinking` inside a `range` over `.Messages`, the first
    and last texts of the nearest enclosing list of nodes (`<think>`, `</think>`); the last
    such mention wins. ("", "") when the template has none."""
    if template is None:
        return "", ""
    opening = closing = ""

    def enter(n: _Visited, ancestors: list[_Visited]) -> None:
        nonlocal opening, closing
        if not (isinstance(n, FieldNode) and n.idents and n.idents[0] == "Thinking"):
            return
        ranges = [a for a in ancestors if isinstance(a, BranchNode) and a.kind == "range"]
        if not ranges or not _range_over_messages(ranges[-1]):
            return
        for a in reversed(ancestors):
            if isinstance(a, tuple):
                if isinstance(a[0], TextNode):
                    opening = a[0].text.strip()
                if isinstance(a[-1], TextNode):
                    closing = a[-1].text.strip()
                break

    _walk(template.root, enter)
    return opening, closing


def _overlap(text: str, tag: str) -> int:
    """The longest suffix of `text` that begins `tag`."""
    for n in range(min(len(tag), len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkingParser(Buffered):
    """Splits streamed text into (thinking, content). Thinking is what follows an opening tag
    at the very start (after blanks) up to the closing tag; blanks right after either tag are
    dropped. Text that may still turn out to be a tag is held back until it is clear."""

    def __init__(self, opening: str, closing: str) -> None:
        self.opening = opening
        self.closing = closing
        self._state = "looking"
        self._buffer = ""
        self._blanks_held = True  # while looking: the buffer holds blanks only

    @property
    def done_thinking(self) -> bool:
        return self._state in ("after_eating", "after")

    def add(self, text: str) -> tuple[str, str]:
        self._append(text)
        if self._state == "looking" and self._blanks_held and text.isspace():
            # More blanks before the opening tag are only held, not read again for each
            # piece: a long run of them costs its length, not its length squared.
            return "", ""
        thinking: list[str] = []
        content: list[str] = []
        again = True
        while again:
            t, c, again = self._eat()
            thinking.append(t)
            content.append(c)
        self._blanks_held = self._state == "looking" and (
            not self._buffer or self._buffer.isspace()
        )
        return "".join(thinking), "".join(content)

    def _eat(self) -> tuple[str, str, bool]:
        acc = self._buffer
        if self._state == "looking":
            trimmed = acc.lstrip()
            if trimmed.startswith(self.opening):
                after = trimmed[len(self.opening) :].lstrip()
                self._buffer = after
                self._state = "thinking" if after else "started_eating"
                return "", "", True
            if self.opening.startswith(trimmed):  # blank, or a tag's start: wait for more
                return "", "", False
            self._state = "after"  # no thinking: the text goes out as it came, blanks and all
            self._buffer = ""
            return "", acc, False
        if self._state == "started_eating":
            trimmed = acc.lstrip()
            self._buffer = ""
            if not trimmed:
                return "", "", False
            self._state = "thinking"
            self._buffer = trimmed
            return "", "", True
        if self._state == "thinking":
            if self.closing in acc:
                thinking, _, rest = acc.partition(self.closing)
                rest = rest.lstrip()
                self._buffer = ""
                self._state = "after" if rest else "after_eating"
                return thinking, rest, False
            n = _overlap(acc, self.closing)
            self._buffer = acc[len(acc) - n :] if n else ""
            return acc[: len(acc) - n], "", False
        if self._state == "after_eating":
            trimmed = acc.lstrip()
            self._buffer = ""
            if trimmed:
                self._state = "after"
            return "", trimmed, False
        self._buffer = ""
        return "", acc, False
