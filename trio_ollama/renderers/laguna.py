"""Poolside's Laguna prompts, as Ollama's built-in `laguna` (the v2 chat template) and
`poolside-v1` (v8) renderers write them: `〈|EOS|〉`, a system block (Poolside's default text
unless the conversation starts with a system message; an empty one leaves it out) listing the
tools as JSON lines, turns in `<user>`, `<assistant>`, `<tool_response>` and `<system>` tags,
calls as `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>`, and the
prompt ending `<think>` when the request thinks, `</think>` otherwise (the default).

v2 puts each tag on its own line, keeps an assistant turn's thinking (or takes it from
`<think>` in its text), and continues a final assistant message in place; v8 writes the tags
tight, keeps thinking only when the request thinks, and always opens a new turn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.renderers.common import Tools
from trio_ollama.renderers.json_spaces import call_arguments, marshal_with_spaces
from trio_ollama.templates import Message, Think, thinks
from trio_ollama.templates.chat import Tool, ToolCall

__all__ = ["LagunaRenderer", "PoolsideV1Renderer"]

BOS = "〈|EOS|〉"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
DEFAULT_SYSTEM = (
    "You are a helpful, conversationally-fluent assistant made by Poolside. You are here to be"
    " helpful to users through natural language conversations."
)
_TOOLS_INTRO = (
    "### Tools\n\nYou may call functions to assist with the user query.\n"
    "All available function signatures are listed below:\n<available_tools>\n"
)
_CALL_FORMAT = (
    "For each function call, return an unescaped XML-like object with function name and"
    " arguments within '<tool_call>' and '</tool_call>' tags, like here:\n"
)
_THINK_FORMAT = "Wrap your thinking in '<think>', '</think>' tags, followed by a function call. "
_THINK_EXAMPLE = "<think> your thoughts here </think>\n"
_CALL_EXAMPLE = (
    "<tool_call>function-name\n<arg_key>argument-key</arg_key>\n"
    "<arg_value>value-of-argument-key</arg_value>\n</tool_call>"
)


def _system(messages: Sequence[Message]) -> tuple[str, Sequence[Message]]:
    """The header's system text, and the messages after it."""
    if messages and messages[0].role == "system":
        return messages[0].content, messages[1:]
    return DEFAULT_SYSTEM, messages


def _tool_lines(tools: Sequence[Mapping[str, Any]]) -> str:
    return "".join(marshal_with_spaces(Tool.from_json(t).go_json()) + "\n" for t in tools)


def _arguments(call: ToolCall, key_end: str, value_end: str) -> str:
    """A call's arguments as tags: text as it is, other values as JSON."""
    out = []
    for key, value in call_arguments(call).items():
        text = value if isinstance(value, str) else marshal_with_spaces(value)
        out.append(f"<arg_key>{key}</arg_key>{key_end}<arg_value>{text}</arg_value>{value_end}")
    return "".join(out)


def _split_thinking(content: str, thinking: str) -> tuple[str, str]:
    """An assistant turn's answer and thinking, the thinking taken from a `<think>` block in
    its text when the message has none (the answer is what follows the last `</think>`)."""
    parts = content.split(THINK_CLOSE)
    if len(parts) == 1:
        return content, thinking
    if not thinking:
        before = parts[0].rstrip("\n")
        if (at := before.rfind(THINK_OPEN)) != -1:
            before = before[at + len(THINK_OPEN) :]
        thinking = before.lstrip("\n")
    return parts[-1].lstrip("\n"), thinking


class LagunaRenderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        thinking = thinks(think)  # off unless asked for, as the template has it
        system, rest = _system(messages)
        out = [BOS]
        if system.strip() or tools:
            out.append("<system>\n")
            if system.strip():
                out.append("\n" + system.rstrip())
            if tools:
                out.append("\n\n" + _TOOLS_INTRO + _tool_lines(tools) + "</available_tools>\n\n")
                if thinking:
                    out.append(_THINK_FORMAT + _CALL_FORMAT + _THINK_EXAMPLE)
                else:
                    out.append(_CALL_FORMAT)
                out.append(_CALL_EXAMPLE)
            out.append("\n</system>\n")
        for i, msg in enumerate(rest):
            if msg.role == "user":
                out.append(f"<user>\n{msg.content}\n</user>\n")
            elif msg.role == "assistant":
                content, reasoning = _split_thinking(msg.content, msg.thinking)
                last = i == len(rest) - 1
                prefill = last and bool(content.strip() or reasoning.strip() or msg.tool_calls)
                out.append("<assistant>\n")
                if reasoning.strip():
                    out.append(f"<think>\n{reasoning.strip()}\n</think>\n")
                else:
                    out.append("</think>\n")
                if content.strip():
                    out.append(content.strip() + "\n")
                for call in msg.tool_calls:
                    args = _arguments(call, "\n", "\n")
                    out.append(f"<tool_call>{call.function.name}\n{args}</tool_call>\n")
                if not prefill:
                    out.append("</assistant>\n")
            elif msg.role == "tool":
                out.append(f"<tool_response>\n{msg.content}\n</tool_response>\n")
            elif msg.role == "system":
                out.append(f"<system>\n{msg.content}\n</system>\n")
        # A final assistant message is continued in place (or, empty, closed with no new turn).
        if not messages or messages[-1].role != "assistant":
            out.append("<assistant>\n" + (THINK_OPEN if thinking else THINK_CLOSE))
        return "".join(out)


class PoolsideV1Renderer:
    """Ollama's `poolside-v1` (its Laguna v8 renderer)."""

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        thinking = thinks(think)
        system, rest = _system(messages)
        out = [BOS]
        if system.strip() or tools or thinking:
            out.append("<system>")
            if system.strip():
                out.append(system.rstrip() + ("\n\n" if tools else ""))
            if tools:
                out.append(_TOOLS_INTRO + _tool_lines(tools) + "</available_tools>")
            out.append("</system>\n")
        for msg in rest:
            if msg.role == "user":
                out.append(f"<user>{msg.content}</user>\n")
            elif msg.role == "assistant":
                out.append("<assistant>")
                out.append(THINK_OPEN + msg.thinking + THINK_CLOSE if thinking else THINK_CLOSE)
                out.append(msg.content)
                for call in msg.tool_calls:
                    args = _arguments(call, "", "")
                    out.append(f"<tool_call>{call.function.name}{args}</tool_call>")
                out.append("</assistant>\n")
            elif msg.role == "tool":
                out.append(f"<tool_response>{msg.content}</tool_response>\n")
            elif msg.role == "system":
                out.append(f"<system>{msg.content}</system>\n")
        out.append("<assistant>" + (THINK_OPEN if thinking else THINK_CLOSE))
        return "".join(out)
