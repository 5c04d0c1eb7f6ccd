"""Glimmer's output, as Ollama's `glimmer` parser reads it: messages `<|start|>assistant
to=RECIPIENT<|message|>BODY` ended by `<|eom|>` (another message follows) or `<|eot|>` (the
turn ends), the first header left to the prompt. A message to `self` is thinking, to a
declared tool a call in Meta's ATEM markup (`<atem:function_calls><atem:invoke name="..">
<atem:parameter name="..">value</atem:parameter>...`, values typed by the tool's schema as
Qwen 3 Coder's are), to anyone else the answer.

Ollama's repairs are kept: a message may end where the next assistant header starts, without
its end token; a tool named through its own namespace (`read.read`) is that tool; a
`<|message|>` token fumbled into an invoke's name is dropped; and an answer whose whole body
is a well-formed call to a declared tool is that call (the model sometimes misaddresses it),
so such an answer is held back until it ends rather than streamed.

Ollama reads the buffer again from its start for each piece; here every search starts where
the last one stopped, so output is read in time linear in its length.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from trio_ollama.parsers.buffered import Buffered, _overlap
from trio_ollama.parsers.qwen3 import ParseError, _typed, _types
from trio_ollama.parsers.tagged import TagSearch
from trio_ollama.parsers.thinkfirst import Output
from trio_ollama.templates import ToolCall, thinks

__all__ = ["GlimmerParser", "resolve_tool"]

log = logging.getLogger(__name__)

START, MESSAGE, EOM, EOT = "<|start|>", "<|message|>", "<|eom|>", "<|eot|>"
HEADER = START + "assistant"
CALLS_OPEN, CALLS_CLOSE = "<atem:function_calls>", "</atem:function_calls>"
INVOKE_OPEN, INVOKE_CLOSE = '<atem:invoke name="', "</atem:invoke>"
PARAM_OPEN, PARAM_CLOSE = '<atem:parameter name="', "</atem:parameter>"

# What ends a recipient still being written: a blank, or a tag.
_RECIPIENT_END = re.compile(r"[\s<]")
# What Ollama trims before looking for the ATEM wrapper in an answer.
_NON_BLANK = re.compile(r"[^ \t\r\n]")


def resolve_tool(tools: Mapping[str, Any], name: str) -> str | None:
    """The declared tool `name` means: itself, or `ns.fn` for a declared `fn` whose own
    namespace (its name's first dotted part) is `ns`, as Glimmer's prompt lists recipients
    `ns.*`; None for an undeclared one."""
    if name in tools:
        return name
    ns, dot, fn = name.partition(".")
    if dot and fn in tools and fn.partition(".")[0] == ns:
        return fn
    return None


def _cut_invoke_name(text: str, start: int) -> tuple[str, int] | None:
    """An invoke's name from `start` on and where what follows its `">` begins. A
    `<|message|>` before the `">` (the model echoing its header) is dropped; one followed by a
    parameter took the `">`'s place. None without an end."""
    parts: list[str] = []
    pos, fumbled = start, False
    term = text.find('">', pos)
    tag = text.find(MESSAGE, pos)
    while True:
        if tag != -1 and (term == -1 or tag < term):
            fumbled = True
            parts.append(text[pos:tag])
            pos = tag + len(MESSAGE)
            if text.startswith(PARAM_OPEN, pos):
                break
            tag = text.find(MESSAGE, pos)
            continue
        if term == -1:
            return None
        parts.append(text[pos:term])
        pos = term + 2
        break
    name = "".join(parts)
    if fumbled:
        log.warning("glimmer: dropped a stray <|message|> from the invoke name %r", name)
    return name, pos


def _invoke_name(body: str) -> str:
    """The function a body already known to be wrapped in `function_calls` invokes, or ""."""
    inner = body[len(CALLS_OPEN) : len(body) - len(CALLS_CLOSE)].strip()
    if not inner.startswith(INVOKE_OPEN):
        return ""
    cut = _cut_invoke_name(inner, len(INVOKE_OPEN))
    return cut[0] if cut is not None else ""


def _parse_atem(body: str, function: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    body = body.strip()
    if not (body.startswith(CALLS_OPEN) and body.endswith(CALLS_CLOSE)):
        raise ParseError("missing ATEM function_calls wrapper")
    invoke = body[len(CALLS_OPEN) : len(body) - len(CALLS_CLOSE)].strip()
    if not (invoke.startswith(INVOKE_OPEN) and invoke.endswith(INVOKE_CLOSE)):
        raise ParseError("missing ATEM invoke wrapper")
    cut = _cut_invoke_name(invoke, len(INVOKE_OPEN))
    if cut is None or len(invoke) - cut[1] < len(INVOKE_CLOSE):
        raise ParseError("malformed ATEM invoke name")
    name, pos = cut
    params = invoke[pos : len(invoke) - len(INVOKE_CLOSE)].removeprefix("\n").removesuffix("\n")
    args: dict[str, Any] = {}
    at = 0
    while at < len(params):
        if not params.startswith(PARAM_OPEN, at):
            raise ParseError("malformed ATEM parameter")
        at += len(PARAM_OPEN)
        end = params.find('">', at)
        if end == -1:
            raise ParseError("malformed ATEM parameter name")
        param = params[at:end]
        at = end + 2
        end = params.find(PARAM_CLOSE, at)
        if end == -1:
            raise ParseError(f'unterminated ATEM parameter "{param}"')
        args[param] = _typed(params[at:end], _types(function, param))
        at = end + len(PARAM_CLOSE)
        if params.startswith("\n", at):
            at += 1
    return name, args


class GlimmerParser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (START, MESSAGE, EOM, EOT)

    has_tool_support = True
    has_thinking_support = True

    def __init__(self) -> None:
        self._tools: dict[str, Mapping[str, Any]] = {}
        self._emit_thinking = True
        self._index = 0
        self._buffer = ""
        self._start = 0  # where the unread part of the buffer begins
        # Searches from a place that only moves on: they serve every message in turn (a tag
        # one message did not find, the next will not find there either).
        self._message = TagSearch(MESSAGE)
        self._calls_close = TagSearch(CALLS_CLOSE)
        self._ends = (TagSearch(EOM), TagSearch(EOT))
        self._new_message()

    def _new_message(self) -> None:
        self._state = "header"
        self._recipient = ""
        self._streamed = False  # some of this answer went out as content
        self._scan = 0  # in a body: no end and no next header begins before this
        self._blanks_to = 0  # an answer's leading blanks run at least this far
        # A header still being written: where it starts, and how far its recipient has
        # been read without finding its end.
        self._pending = (-1, 0)

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        # The last tool of a name wins, as in Ollama's map.
        self._tools = {}
        for tool in tools:
            fn = tool.get("function") or {}
            if isinstance(name := fn.get("name"), str) and name.strip():
                self._tools[name.strip()] = fn
        self._emit_thinking = think is None or thinks(think)
        self._index = 0
        self._buffer = ""
        self._start = 0
        for search in (self._message, self._calls_close, *self._ends):
            search.reset()
        self._new_message()

    def add(self, text: str, done: bool) -> Output:
        self._append(text)
        content: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        while self._step(done, content, thinking, calls):
            pass
        # Drop what was read once it is most of the buffer: each character is copied a
        # bounded number of times however the output is cut.
        if self._start and self._start * 2 >= len(self._buffer):
            self._buffer = self._buffer[self._start :]
            self._rebase(self._start)
        return "".join(content), "".join(thinking), calls

    def _rebase(self, by: int) -> None:
        self._start -= by
        self._scan = max(0, self._scan - by)
        self._blanks_to = max(0, self._blanks_to - by)
        at, read = self._pending
        self._pending = (at - by, read - by) if at >= by else (-1, 0)
        # Searching again from the start reads at most what was just dropped.
        for search in (self._message, self._calls_close, *self._ends):
            search.reset()

    def _step(
        self, done: bool, content: list[str], thinking: list[str], calls: list[ToolCall]
    ) -> bool:
        if self._state == "header":
            return self._header(done, content)
        acc, start = self._buffer, self._start
        end, body_end, complete = self._body_end(acc, start, done)
        if end is None:
            return False
        body = acc[start:body_end]
        if self._state == "content":
            if complete and (call := self._misaddressed_call(body)) is not None:
                calls.append(call)
            elif body:
                content.append(body)
                self._streamed = True
        elif self._state == "thinking":
            if self._emit_thinking:
                thinking.append(body)
        elif complete:
            calls.append(self._call(body))
        self._start = end
        self._scan = max(self._scan, end)
        if complete:
            self._new_message()
            self._scan = end
        # What is left of an unfinished message is only what may start a tag: reading it
        # again before more comes would find the same.
        return complete

    def _header(self, done: bool, content: list[str]) -> bool:
        acc, start = self._buffer, self._start
        if acc.startswith(HEADER, start):
            start = self._start = start + len(HEADER)
        elif (
            not done
            and len(acc) - start < len(HEADER)
            and acc.startswith("<", start)
            and HEADER.startswith(acc[start:])
        ):
            return False
        at = self._message.find(acc, start)
        if at == -1:
            if not done:
                return False
            # No header at all: what came is the answer, as it is.
            rest = acc[start:]
            self._start = len(acc)
            content.append(rest)
            return bool(rest)
        header = acc[start:at].strip()
        self._recipient = header.removeprefix("to=").strip()
        if self._recipient == "self":
            self._state = "thinking"
        elif resolve_tool(self._tools, self._recipient) is not None:
            self._state = "tool"
        else:
            self._state = "content"
        self._start = self._scan = at + len(MESSAGE)
        return True

    def _holds(self, acc: str, start: int) -> bool:
        """Whether an answer may be a misaddressed call: one that opens (after blanks) with the
        ATEM wrapper or part of it, while nothing of it has gone out, and tools were given."""
        if self._state != "content" or self._streamed or not self._tools:
            return False
        # Blanks already read are not read again (a long run would cost its length squared).
        found = _NON_BLANK.search(acc, max(start, self._blanks_to))
        if found is None:
            self._blanks_to = len(acc)
            return True
        self._blanks_to = found.start()
        head = acc[found.start() : found.start() + len(CALLS_OPEN)]
        return CALLS_OPEN.startswith(head)

    def _body_end(self, acc: str, start: int, done: bool) -> tuple[int | None, int, bool]:
        """(where the unread part begins after this step, where the body read now ends, whether
        the message is complete); None to wait for more."""
        hold = self._state == "tool" or self._holds(acc, start)
        control = start
        if hold:
            close = self._calls_close.find(acc, start)
            if close == -1:
                # Nothing ends a held message before its ATEM block closes.
                return (len(acc), len(acc), True) if done else (None, 0, False)
            control = close + len(CALLS_CLOSE)
        # The first end token after the ATEM block (if one is held), and before it the first
        # header that starts a new message.
        scan = max(self._scan, control)
        ends = [(i, len(s.tag)) for s in self._ends if (i := s.find(acc, scan)) != -1]
        end, end_len = min(ends) if ends else (-1, 0)
        header, pending = self._next_header(acc, scan, end, done)
        if header != -1 and not pending:
            return header, header, True
        if end != -1:
            return end + end_len, end, True
        if done:
            return len(acc), len(acc), True
        if hold:
            return None, 0, False
        if header != -1:
            return header, header, False
        keep = max(_overlap(acc[-len(EOM) :], EOM), _overlap(acc[-len(EOT) :], EOT))
        cut = max(start, len(acc) - keep)
        return cut, cut, False

    def _next_header(self, acc: str, scan: int, before: int, done: bool) -> tuple[int, bool]:
        """The first `<|start|>` from `scan` (and before `before`, an end token, unless -1) that
        opens an assistant header, or may once more comes: (where, whether still unsure)."""
        limit = len(acc) if before == -1 else before
        at = scan
        while (i := acc.find(START, at, limit)) != -1:
            status = self._header_status(acc, i, done)
            if status != "invalid":
                return i, status == "pending"
            at = i + len(START)
            # Nothing before here can start a header: later pieces need not read it again.
            self._scan = at
        if done or before != -1:
            return -1, False
        keep = _overlap(acc[max(at, len(acc) - len(HEADER)) :], HEADER)
        if keep:
            return len(acc) - keep, True
        self._scan = max(self._scan, len(acc) - len(START) + 1)
        return -1, False

    def _header_status(self, acc: str, i: int, done: bool) -> str:
        """Whether the `<|start|>` at `i` opens an assistant message ("valid"), cannot
        ("invalid"), or may once more of it comes ("pending")."""
        if len(acc) - i < len(HEADER):
            return "pending" if not done and HEADER.startswith(acc[i:]) else "invalid"
        if not acc.startswith(HEADER, i):
            return "invalid"
        at = i + len(HEADER)
        if acc.startswith(MESSAGE, at):
            return "valid"
        rest = acc[at : at + len(MESSAGE)]
        if not done and MESSAGE.startswith(rest):
            return "pending"
        if not acc.startswith(" to=", at):
            return "pending" if not done and " to=".startswith(rest) else "invalid"
        at += len(" to=")
        # A recipient is a name: a blank or a tag other than <|message|> ends it.
        pending_at, read = self._pending
        stop = _RECIPIENT_END.search(acc, read if pending_at == i else at)
        if stop is not None and acc.startswith(MESSAGE, stop.start()):
            recipient = acc[at : stop.start()]
            valid = recipient in ("self", "user") or recipient in self._tools
            return "valid" if valid else "invalid"
        if done:
            return "invalid"
        if stop is None:
            self._pending = (i, len(acc))
            return "pending"
        tail = acc[stop.start() : stop.start() + len(MESSAGE) + 1]
        return "pending" if acc[stop.start()] == "<" and MESSAGE.startswith(tail) else "invalid"

    def _misaddressed_call(self, body: str) -> ToolCall | None:
        """The call a whole answer is, when nothing of it went out and it is exactly a
        well-formed ATEM block for a declared tool (named by the block, not the header)."""
        if self._streamed or not self._tools:
            return None
        trimmed = body.strip()
        if not (trimmed.startswith(CALLS_OPEN) and trimmed.endswith(CALLS_CLOSE)):
            return None
        name = resolve_tool(self._tools, _invoke_name(trimmed))
        if name is None:
            return None
        try:
            _, args = _parse_atem(trimmed, self._tools[name])
        except ParseError:
            return None
        return self._numbered(name, args)

    def _call(self, body: str) -> ToolCall:
        name = resolve_tool(self._tools, self._recipient)
        assert name is not None  # the header made this a call only for a declared tool
        try:
            invoked, args = _parse_atem(body, self._tools[name])
        except ParseError as exc:
            raise ParseError(f"parse Glimmer call to {self._recipient}: {exc}") from exc
        if resolve_tool(self._tools, invoked) != name:
            raise ParseError(
                f'Glimmer recipient "{self._recipient}" does not match ATEM invoke "{invoked}"'
            )
        return self._numbered(name, args)
