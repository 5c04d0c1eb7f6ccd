"""Qwen 3.5's prompt, as Ollama's `qwen3.5` renderer writes it: ChatML, the tools as spaced JSON
under Qwen 3 Coder's instructions, calls as `<function=...><parameter=...>` blocks, thinking
kept for the turns after the last question, and an empty think block when not thinking.

Ollama's `qwen3.8` is the same code in a variant: one system turn that gathers every system and
developer message, reasoning-effort instructions at its head, every past answer with its think
block (and the answer's own `<think>` text left alone), and errors for conversations Qwen 3.8's
template refuses."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.template.values import fmt_v
from trio_ollama.renderers.common import (
    RenderError,
    Tools,
    arguments,
    dumps,
    image_tags,
    spaced,
    thinks,
    tool_json,
)
from trio_ollama.renderers.qwen3vl import is_query, last_query, tool_response
from trio_ollama.templates import Message, Think
from trio_ollama.templates.chat import THINK_LEVELS

__all__ = ["Qwen35Renderer", "argument_text", "effort_instructions"]

log = logging.getLogger(__name__)

XHIGH = (
    "Reasoning effort is set to xhigh. Please think carefully through the task, validate key"
    " assumptions, consider plausible alternatives, and prioritize correctness, consistency,"
    " and clarity in the final answer."
)
LOW = (
    "Reasoning effort is set to low. Keep your thinking brief and focused, moving directly to"
    " the conclusion without unnecessary elaboration."
)

TOOLS_OUTRO = """
</tools>

If you choose to call a function ONLY reply in the following format with NO suffix:

<tool_call>
<function=example_function_name>
<parameter=example_parameter_1>
value_1
</parameter>
<parameter=example_parameter_2>
This is the value for the second parameter
that can span
multiple lines
</parameter>
</function>
</tool_call>

<IMPORTANT>
Reminder:
- Function calls MUST follow the specified format: an inner <function=...></function> block \
must be nested within <tool_call></tool_call> XML tags
- Required parameters MUST be specified
- You may provide optional reasoning for your function call in natural language BEFORE the \
function call, but NOT after
- If there is no function call available, answer the question like normal with your current \
knowledge and do not tell the user about function calls
</IMPORTANT>"""


def argument_text(value: Any) -> str:
    """Ollama's `formatToolCallArgument`: text as it is, objects and arrays as JSON, other
    values as Go's `%v` prints them (a JSON number is a float64 there)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return gojson.dumps(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return fmt_v(value)


def effort_instructions(think: bool | str | None) -> str:
    """What Qwen 3.8's system turn opens with for `think`: xhigh's guidance when the request
    does not say (and for "high" and "max"), low's for "low", nothing for "medium" (which a
    plain true means) or no thinking."""
    if think is None:
        return XHIGH
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise RenderError(f"invalid thinking value {think}")
    if not thinks(think):
        return ""
    return {"low": LOW, "medium": "", "high": XHIGH, "max": XHIGH}[
        think if isinstance(think, str) else "medium"
    ]


def _fold_instructions(messages: Sequence[Message]) -> list[Message]:
    """Qwen 3.8 reads one leading system turn and has no developer role: every system and
    developer message, in order, joins it; the other messages keep theirs."""
    instructions = [m for m in messages if m.role in ("system", "developer")]
    for m in instructions:
        if m.images:
            raise RenderError(f"{m.role} message cannot contain images")
    if not instructions or (len(instructions) == 1 and messages[0].role == "system"):
        return list(messages)
    text = "\n\n".join(c for m in instructions if (c := m.content.strip()))
    rest = [m for m in messages if m.role not in ("system", "developer")]
    return [Message(role="system", content=text), *rest]


def _check_qwen38(messages: Sequence[Message]) -> None:
    if not messages:
        raise RenderError("no messages provided")
    if not any(is_query(m, strip=True) for m in messages):
        raise RenderError("no user query found in messages")


def _reasoning(content: str, thinking: str, think_block: bool, tagged: bool) -> tuple[str, str]:
    """The reasoning a past answer shows and the rest of its text: its thinking, else (when
    `tagged`) what its text holds in a think block."""
    if think_block and thinking:
        return thinking.strip(), content
    if not tagged:
        return "", content
    reasoning = ""
    if (close := content.find("</think>")) != -1:
        before = content[:close]
        opened = before.rfind("<think>")
        reasoning = before[opened + len("<think>") :] if opened != -1 else before
        content = content[close + len("</think>") :].lstrip("\n")
    return reasoning.strip(), content


class Qwen35Renderer:
    """`always_think_block`: every past answer keeps its think block, however old and whether
    or not this request thinks (Ollama's `ornith`, Qwen 3.5's code with that one change).
    `qwen38`: Ollama's Qwen 3.8 variant (the module's docstring), which implies it."""

    def __init__(self, *, always_think_block: bool = False, qwen38: bool = False) -> None:
        self._always_block = always_think_block or qwen38
        self._qwen38 = qwen38

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        instructions = ""
        if self._qwen38:
            messages = _fold_instructions(messages)
            _check_qwen38(messages)
            instructions = effort_instructions(think)
        out: list[str] = []
        thinking = True if think is None else thinks(think)
        first_system = bool(messages) and messages[0].role == "system"
        if tools:
            out.append("<|im_start|>system\n")
            if instructions:
                out.append(instructions + "\n\n")
            out.append("# Tools\n\nYou have access to the following functions:\n\n<tools>")
            for tool in tools:
                out.append("\n" + spaced(dumps(tool_json(tool))))
            out.append(TOOLS_OUTRO)
            if first_system and (system := image_tags(messages[0], 0)[0].strip()):
                out.append("\n\n" + system)
            out.append("<|im_end|>\n")
        elif first_system:
            system = image_tags(messages[0], 0)[0].strip()
            # Qwen 3.8 writes no system turn with nothing in it.
            if not self._qwen38 or system or instructions:
                between = "\n\n" if instructions and system else ""
                out.append(f"<|im_start|>system\n{instructions}{between}{system}<|im_end|>\n")
        elif instructions:
            out.append(f"<|im_start|>system\n{instructions}<|im_end|>\n")
        query = last_query(messages, strip=True)
        offset = 0
        for i, message in enumerate(messages):
            content, offset = image_tags(message, offset)
            content = content.strip()
            last = i == len(messages) - 1
            prefill = last and message.role == "assistant"
            if message.role == "user" or (message.role == "system" and i != 0):
                out.append(f"<|im_start|>{message.role}\n{content}<|im_end|>\n")
            elif message.role == "assistant":
                block = self._always_block or (thinking and i > query)
                reasoning, content = _reasoning(
                    content, message.thinking, block, tagged=not self._qwen38
                )
                if block:
                    out.append(
                        f"<|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n{content}"
                    )
                else:
                    out.append("<|im_start|>assistant\n" + content)
                for j, call in enumerate(message.tool_calls):
                    if j > 0:
                        out.append("\n")
                    elif content.strip():
                        out.append("\n\n")
                    out.append(f"<tool_call>\n<function={call.function.name}>\n")
                    for name, value in arguments(call).items():
                        out.append(f"<parameter={name}>\n{argument_text(value)}\n</parameter>\n")
                    out.append("</function>\n</tool_call>")
                if not prefill:
                    out.append("<|im_end|>\n")
            elif message.role == "tool":
                out.append(tool_response(messages, i, content))
            elif self._qwen38 and message.role != "system":
                # Qwen 3.5 drops a role it does not know; Qwen 3.8 writes it as it is.
                log.warning("qwen3.8 renderer: unexpected message role %r", message.role)
                out.append(f"<|im_start|>{message.role}\n{content}<|im_end|>\n")
            if last and not prefill:
                out.append("<|im_start|>assistant\n")
                out.append("<think>\n" if thinking else "<think>\n\n</think>\n\n")
        return "".join(out)
