"""What the tag-driven family parsers (DeepSeek 3, Cogito, GLM, Cohere, Laguna, FunctionGemma,
Olmo 3) share beyond qwen3.py's helpers: a search for a tag in a buffer that grows at its end,
which reads each character about once however small the pieces, what to hold back at a piece's
end, the loop that reads a buffer state by state, and answer text with call sections read whole
at their closing tag."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.buffered import Buffered, _overlap, _release
from trio_ollama.parsers.qwen3 import _more_blanks
from trio_ollama.templates import Message, Think, ToolCall

__all__ = ["CallSections", "Holdback", "PrefillingParser", "StatefulParser", "TagSearch"]


class TagSearch:
    """Where `tag` first occurs in a buffer from `start` on, for a buffer that only grows at
    its end between calls: each call starts where the last one could not have missed it, so a
    long buffer arriving in small pieces is read once, not once per piece. `reset` when the
    buffer is replaced or `start` moves."""

    __slots__ = ("_from", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._from = 0

    def reset(self) -> None:
        self._from = 0

    def find(self, buffer: str, start: int = 0) -> int:
        i = buffer.find(self.tag, max(start, self._from))
        self._from = i if i != -1 else max(start, len(buffer) - len(self.tag) + 1)
        return i


class Holdback:
    """What streaming text must hold back at its end: the longest end that may begin one of
    `tags`, and (with `blanks`) the blanks before it, which a tag may eat. Qwen 3's `_release`
    with one search for all the tags, for families with many."""

    __slots__ = ("_blanks", "_longest", "_partial")

    def __init__(self, *tags: str, blanks: bool = True) -> None:
        starts = sorted({tag[:n] for tag in tags for n in range(1, len(tag) + 1)}, key=len,
                        reverse=True)  # fmt: skip
        # The leftmost match is the longest end that begins a tag.
        self._partial = re.compile("(?:" + "|".join(map(re.escape, starts)) + r")\Z")
        self._longest = max(map(len, tags))
        self._blanks = blanks

    def split(self, text: str) -> tuple[str, str]:
        """(text safe to emit, text to hold)."""
        match = self._partial.search(text, max(0, len(text) - self._longest))
        cut = match.start() if match is not None else len(text)
        if self._blanks:
            cut = len(text[:cut].rstrip())
        return text[:cut], text[cut:]


class StatefulParser(Buffered):
    """A parser that reads its buffer state by state: `_eat` takes what it can in the state
    it is in, and says whether it moved on (to read again); `_finish` takes what the end of
    the output leaves."""

    # The states that hold back blanks at the buffer's end, and so may skip more of them.
    _HOLDS_BLANKS: ClassVar[tuple[str, ...]] = ("content", "thinking")
    _state: str
    _blanks_held: bool
    # The blanks at the buffer's start go (a tag before them ate them): see `_skip_blanks`.
    _trim = False
    # The searches over the buffer, started again whenever it is replaced.
    _searches: tuple[TagSearch, ...] = ()

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        if not done and self._state in self._HOLDS_BLANKS and _more_blanks(self._blanks_held, text):
            return "", "", []
        content: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        while self._skip_blanks() and self._eat(content, thinking, calls, done):
            pass
        self._finish(content, thinking, calls, done)
        self._blanks_held = not self._buffer or self._buffer.isspace()
        return "".join(content), "".join(thinking), calls

    def _eat(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> bool:
        raise NotImplementedError

    def _finish(
        self, content: list[str], thinking: list[str], calls: list[ToolCall], done: bool
    ) -> None:
        """What is left when nothing more can be read; most families leave it held."""

    def _reset(self) -> None:
        for search in self._searches:
            search.reset()

    def _consume(self, rest: str, *, trim: bool, state: str | None = None) -> None:
        """The buffer becomes `rest` (read from its start again); `trim` drops its leading
        blanks, and those of the pieces after it until text comes."""
        self._buffer = rest
        self._trim = trim
        if state is not None:
            self._state = state
        self._reset()

    def _skip_blanks(self) -> bool:
        """Drops the blanks `_trim` says go, before each state reads; whether anything is left
        to read."""
        if self._trim:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return False
            self._trim = False
        return True

    def _read_to(self, search: TagSearch, out: list[str], state: str) -> bool:
        """Text up to `search`'s tag goes to `out` without the blanks the tag eats, and reading
        goes on in `state` after the tag, blanks first dropped. Before the tag comes, what
        cannot begin it goes to `out`."""
        acc = self._buffer
        at = search.find(acc)
        if at != -1:
            if before := acc[:at].rstrip():
                out.append(before)
            self._consume(acc[at + len(search.tag) :], trim=True, state=state)
            return True
        text, self._buffer = _release(acc, search.tag)
        self._reset()
        if text:
            out.append(text)
        return False


class PrefillingParser(StatefulParser):
    """A family whose reading starts from the conversation's last message (Ollama's `Init`
    takes it). The server calls `prefill` after `init`; `init` also takes the message itself,
    as Ollama's does, so that the family's cases read as Ollama states them. A subclass says
    how it starts (`_start`), and how a last message moves it on where that differs."""

    def init(
        self,
        tools: Sequence[Mapping[str, Any]],
        think: Think,
        *,
        last_message: Message | None = None,
    ) -> None:
        """`last_message`: as `prefill` (the server calls that)."""
        self._buffer = ""
        self._blanks_held = True
        self._index = 0
        self._start(tools, think)
        self._reset()
        if last_message is not None:
            self.prefill(last_message)

    def _start(self, tools: Sequence[Mapping[str, Any]], think: Think) -> None:
        """The family's own state for a new output (the buffer, call index and searches are
        started again around it)."""
        raise NotImplementedError

    def prefill(self, last: Message) -> None:
        """The conversation's last message: the answer continues an assistant's with text (Cohere's
        open `<|START_TEXT|>`, DeepSeek's answer after its thinking), so the thinking is over."""
        if last.role == "assistant" and last.content:
            self._state = "content"
            self._reset()


class CallSections(Buffered):
    """Answer text, and calls in sections between `OPEN` and `CLOSE`, each read whole at its
    close by `_section`; no thinking."""

    has_tool_support = True
    has_thinking_support = False
    OPEN: ClassVar[str]
    CLOSE: ClassVar[str]
    # Whether what is held at the end as a possible `OPEN` is the answer's when the output
    # ends (Olmo 3), or is dropped (FunctionGemma).
    RELEASE_AT_END: ClassVar[bool] = False

    def __init__(self) -> None:
        self.init((), None)

    def init(self, tools: Sequence[Mapping[str, Any]], think: Think) -> None:
        self._in_section = False
        self._buffer = ""
        self._searched = 0
        self._index = 0

    def _section(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        """The calls a section's text holds, as (name, arguments); none for one Ollama drops."""
        raise NotImplementedError

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        content: list[str] = []
        calls: list[ToolCall] = []
        while True:
            acc = self._buffer
            if not self._in_section:
                before, found, after = acc.partition(self.OPEN)
                if found:
                    content.append(before)
                    self._buffer, self._in_section, self._searched = after, True, 0
                    continue
                n = 0 if done and self.RELEASE_AT_END else _overlap(acc, self.OPEN)
                content.append(acc[: len(acc) - n])
                self._buffer = acc[len(acc) - n :]
                break
            close = acc.find(self.CLOSE, self._searched)
            if close == -1:
                self._searched = max(0, len(acc) - len(self.CLOSE) + 1)
                break
            self._buffer, self._in_section = acc[close + len(self.CLOSE) :], False
            for name, args in self._section(acc[:close]):
                calls.append(self._numbered(name, args))
        return "".join(content), "", calls
