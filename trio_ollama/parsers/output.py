"""One generation's output, parsed as Ollama's chat and generate handlers parse it: thinking
first (when the request thinks and the template has tags), then tool calls (when the request
offered tools). The native API builds its chunks from what this returns; the compatibility
layers translate those chunks, so parsing happens here once.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trio_ollama.gocompat.template import GoTemplate
from trio_ollama.parsers.builtin import BuiltinParser, Prefills, builtin_parser
from trio_ollama.parsers.thinking import ThinkingParser, infer_thinking_tags
from trio_ollama.parsers.tools import ToolCallParser, preserved_for_tag, tool_call_tag
from trio_ollama.templates import Message, ToolCall

__all__ = ["OutputParser", "Parsed", "new_tool_call_id"]

_ID_CHARS = string.ascii_lowercase + string.digits


def new_tool_call_id() -> str:
    """Ollama's ids: `call_` and eight random lower-case letters or digits."""
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(8))


@attrs.frozen
class Parsed:
    """What one chunk carries: answer text, thinking text, and complete tool calls."""

    content: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@attrs.define
class OutputParser:
    thinking: ThinkingParser | None = None
    tools: ToolCallParser | None = None
    builtin: BuiltinParser | None = None

    @classmethod
    def for_request(
        cls,
        template: GoTemplate | None,
        prompt: str,
        *,
        think: bool | str | None,
        tools: Sequence[Mapping[str, Any]] = (),
        builtin: str = "",
        last: Message | None = None,
    ) -> OutputParser:
        """The parsers a request needs. A model with a built-in parser (its PARSER) is read by
        that alone, told the chat's `last` message (an answer the prompt left open goes on).
        Otherwise: thinking when it thinks and the template names tags (the prompt may already
        have opened the thinking), tool calls when it offers tools."""
        family = builtin_parser(builtin) if builtin else None
        if family is not None:
            family.init(tools, think)
            if last is not None and isinstance(family, Prefills):
                family.prefill(last)
            return cls(builtin=family)
        thinking = None
        opening, closing = infer_thinking_tags(template)
        if think and opening and closing:
            thinking = ThinkingParser(opening, closing)
            if prompt.strip().endswith(opening):
                thinking.add(opening)
        tool_parser = ToolCallParser(tool_call_tag(template), tools) if tools else None
        return cls(thinking, tool_parser)

    @property
    def preserved_tokens(self) -> tuple[str, ...]:
        """The control tokens the runner is to write as text for this reading: a built-in
        parser's tags, or the template's tool-call tag when tools are offered."""
        if self.builtin is not None:
            return self.builtin.preserved_tokens
        return preserved_for_tag(self.tools.tag) if self.tools is not None else ()

    @property
    def active(self) -> bool:
        return self.thinking is not None or self.tools is not None or self.builtin is not None

    def add(self, text: str, *, done: bool = False) -> list[Parsed]:
        """The chunks `text` makes ready (none while it is held back). `done` marks the end
        of the output: what the tool parser held that was no call after all comes out.
        Raises `ParseError` where a built-in parser does (a malformed call)."""
        if self.builtin is not None:
            content, thinking, calls = self.builtin.add(text, done)
            if not (content or thinking or calls):
                return []
            named = tuple(attrs.evolve(c, id=new_tool_call_id()) for c in calls)
            return [Parsed(content, thinking, named)]
        content, thinking = text, ""
        if self.thinking is not None:
            thinking, content = self.thinking.add(text)
        if self.tools is None:
            return [Parsed(content, thinking)] if content or thinking else []
        calls, content = self.tools.add(content)
        if done and not calls:
            content += self.tools.content()
        out: list[Parsed] = []
        if content or thinking:
            out.append(Parsed(content, thinking))
        if calls:
            # A chunk that carries calls carries no text (Ollama's shape); text that came
            # with them went out just before, where Ollama would have dropped the calls.
            out.append(
                Parsed(tool_calls=tuple(attrs.evolve(c, id=new_tool_call_id()) for c in calls))
            )
        return out
