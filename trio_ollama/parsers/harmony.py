"""gpt-oss output in OpenAI's harmony format, as Ollama's `harmony` package reads it.

The output is a run of messages, `<|start|>HEADER<|message|>BODY<|end|>`; the prompt ends
with `<|start|>assistant`, so the first message's start is implied. The header names a role, a
channel (`<|channel|>analysis`, `commentary` or `final`), and maybe a recipient (`to=NAME`,
before or after the channel, or in place of the role), with an optional `<|constrain|>json`.
An analysis body is thinking; one with a recipient (analysis or commentary) is a tool call,
its body the JSON arguments; the rest is the answer. The runner stops at `<|call|>`, so a
call is the last thing written: its arguments are read when the output ends, as Ollama does.

Tool names become TypeScript identifiers in the prompt (`get weather` is `get_weather`, a
second one `get_weather_2`): `prompt_tools` writes them so, and the parser maps a call's name
back to the one the request gave.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from trio_ollama.gocompat.decode import DecodeError, loads_text
from trio_ollama.parsers.buffered import Buffered, _overlap
from trio_ollama.parsers.qwen3 import ParseError
from trio_ollama.parsers.tagged import TagSearch
from trio_ollama.templates import Message, ToolCall, ToolCallFunction

__all__ = ["FunctionNames", "HarmonyHeader", "HarmonyParser", "parse_header"]

log = logging.getLogger(__name__)

START, END, MESSAGE = "<|start|>", "<|end|>", "<|message|>"
CHANNEL, CONSTRAIN = "<|channel|>", "<|constrain|>"

# gpt-oss's own tools: the prompt describes them itself, and their names stay as they are.
BUILTIN_TOOLS = frozenset({"browser.search", "browser.open", "browser.find", "python"})

# Go's unicode.IsSpace (Python's whitespace also has the four separators \x1c-\x1f).
_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_FIELD = re.compile(f"[^{re.escape(_SPACE)}]+")
_FIRST_SPACE = re.compile(f"[{re.escape(_SPACE)}]")


def _trim(text: str) -> str:
    return text.strip(_SPACE)


@attrs.frozen
class HarmonyHeader:
    role: str = ""
    channel: str = ""
    recipient: str = ""


def parse_header(raw: str) -> HarmonyHeader:
    """A message's header, read as Ollama reads it: the channel is the word after
    `<|channel|>`; of the other words, the first is the role, unless it is `to=NAME` (then the
    role is "tool" and NAME the recipient), and a `to=NAME` second word is the recipient."""
    if CONSTRAIN in raw:
        # The model may glue the constraint to the word before it.
        raw = _trim(raw.replace(CONSTRAIN, " " + CONSTRAIN, 1))
    channel = ""
    at = raw.find(CHANNEL)
    if at != -1:
        after = raw[at + len(CHANNEL) :]
        space = _FIRST_SPACE.search(after)
        end = space.start() if space is not None else len(after)
        channel = after[:end]
        raw = _trim(raw[:at] + after[end:])
    words = _FIELD.findall(raw)
    if not words:
        log.debug("harmony header without a role")
        return HarmonyHeader(channel=channel)
    role, recipient = words[0], ""
    if role.startswith("to="):
        role, recipient = "tool", role[3:]
    elif len(words) > 1 and words[1].startswith("to="):
        recipient = words[1][3:]
    return HarmonyHeader(role=role, channel=channel, recipient=recipient)


def _identifier(name: str) -> str:
    """`name` as a TypeScript identifier: blanks, dashes and dots become underscores, other
    characters than letters, digits, `_` and `$` go, and a leading digit gets an underscore."""
    chars: list[str] = []
    for ch in name:
        if ch in " -.":
            chars.append("_")
        elif ch.isalpha() or ch.isdecimal() or ch in "_$":
            chars.append(ch)
    out = "".join(chars) or "unnamed"
    return "_" + out if out[0] in "0123456789" else out


class FunctionNames:
    """The request's tool names and the names the prompt gives them, both ways."""

    def __init__(self) -> None:
        self._to_harmony: dict[str, str] = {}
        self._to_user: dict[str, str] = {}

    def add(self, user: str) -> str:
        """The prompt's name for `user`: a new identifier (`f`, then `f_2`, `f_3` for names
        that come out the same), or the name itself for gpt-oss's own tools."""
        base = candidate = _identifier(user)
        count = 2
        while candidate in self._to_user:
            candidate = f"{base}_{count}"
            count += 1
        if user in BUILTIN_TOOLS:
            candidate = user
        self._to_harmony[user] = candidate
        self._to_user[candidate] = user
        return candidate

    def original(self, harmony: str) -> str:
        """The request's name for a name the prompt gave (an unknown one stays itself)."""
        user = self._to_user.get(harmony)
        if user is None:
            log.debug("harmony tool call to a function the request did not name: %r", harmony)
            return harmony
        return user

    def renamed(self, tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """`tools` with each function named as the prompt names it (added here)."""
        out: list[Mapping[str, Any]] = []
        for tool in tools:
            function = tool.get("function")
            name = function.get("name") if isinstance(function, Mapping) else None
            if isinstance(function, Mapping) and isinstance(name, str) and name:
                out.append({**tool, "function": {**function, "name": self.add(name)}})
            else:
                out.append(tool)
        return out


class HarmonyParser(Buffered):
    preserved_tokens: ClassVar[tuple[str, ...]] = (START, END, MESSAGE, CHANNEL, CONSTRAIN)

    has_tool_support = True
    has_thinking_support = True

    def __init__(self) -> None:
        self._names = FunctionNames()
        self._buffer = ""
        self._state = "header"  # "start": before a message; "header"; "content": its body
        self._message = TagSearch(MESSAGE)  # in "header": the end of the header
        self._mode = "content"  # what a body is: "content", "thinking" or "tool"
        self._tool_name: str | None = None
        self._tool_parts: list[str] = []

    def init(self, tools: Sequence[Mapping[str, Any]], think: bool | str | None) -> None:
        # The prompt ends with `<|start|>assistant`: the output goes on with that header.
        self._names = FunctionNames()
        self._names.renamed(tools)
        self._buffer, self._state = "assistant", "header"
        self._message.reset()
        self._mode, self._tool_name, self._tool_parts = "content", None, []

    def prefill(self, last: Message) -> None:
        """A conversation ending with the assistant's own words: the prompt left its answer
        (or, with thinking only, its analysis) open, and the output goes on inside it."""
        if last.role != "assistant" or not (last.content or last.thinking):
            return
        self._buffer, self._state = "", "content"
        self._mode = "content" if last.content else "thinking"

    def prompt_tools(self, tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return FunctionNames().renamed(tools)

    def add(self, text: str, done: bool) -> tuple[str, str, list[ToolCall]]:
        self._append(text)
        content: list[str] = []
        thinking: list[str] = []
        while self._step(content, thinking):
            pass
        calls = self._call() if done else []
        return "".join(content), "".join(thinking), calls

    def _step(self, content: list[str], thinking: list[str]) -> bool:
        acc = self._buffer
        if self._state == "start":
            at = acc.find(START)
            if at == -1:
                # What comes before a start is dropped: keep only what may begin one.
                self._buffer = acc[len(acc) - _overlap(acc, START) :]
                return False
            if at:
                log.debug("harmony output between messages dropped (%d characters)", at)
            self._buffer, self._state = acc[at + len(START) :], "header"
            self._message.reset()
            return True
        if self._state == "header":
            at = self._message.find(acc)
            if at == -1:
                return False
            self._begin_body(parse_header(acc[:at]))
            self._buffer, self._state = acc[at + len(MESSAGE) :], "content"
            return True
        at = acc.find(END)
        if at != -1:
            self._body(acc[:at], content, thinking)
            self._buffer, self._state, self._mode = acc[at + len(END) :], "start", "content"
            return True
        # Hold back only what may begin `<|end|>`: the rest of the body streams.
        keep = _overlap(acc, END)
        self._body(acc[: len(acc) - keep], content, thinking)
        self._buffer = acc[len(acc) - keep :]
        return False

    def _begin_body(self, header: HarmonyHeader) -> None:
        if header.recipient and header.channel in ("analysis", "commentary"):
            self._mode, self._tool_name = "tool", header.recipient
        elif header.channel == "analysis":
            self._mode = "thinking"
        else:
            self._mode = "content"

    def _body(self, text: str, content: list[str], thinking: list[str]) -> None:
        if not text:
            return
        if self._mode == "tool":
            self._tool_parts.append(text)
        else:
            (thinking if self._mode == "thinking" else content).append(text)

    def _call(self) -> list[ToolCall]:
        """The call the output ended with, if it addressed one. Every call body is gathered
        under the last recipient, as Ollama's accumulator does (the runner stops at the first
        call's end, so there is one)."""
        raw, self._tool_parts = "".join(self._tool_parts), []
        if self._tool_name is None:
            return []
        name = self._names.original(self._tool_name.removeprefix("functions."))
        try:
            # Go's reading: what it refuses (NaN, numbers past a float64) is Ollama's error.
            args = loads_text(raw)
        except DecodeError as exc:
            detail = str(exc).removeprefix("invalid JSON: ")
            raise ParseError(f"error parsing tool call: raw='{raw}', err={detail}") from None
        if args is None:
            args = {}  # a JSON null leaves Go's map empty
        if not isinstance(args, dict):
            raise ParseError(
                f"error parsing tool call: raw='{raw}', err=arguments are not a JSON object"
            )
        return [ToolCall(function=ToolCallFunction(name=name, arguments=args))]
