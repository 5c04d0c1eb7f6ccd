"""Qwen 3.5's prompt, as Ollama's `qwen3.5` renderer writes it: ChatML, the tools as spaced JSON
under Qwen 3 Coder's instructions, calls as `<function=...><parameter=...>` blocks, thinking
kept for the turns after the last question, and an empty think block when not thinking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.template.values import fmt_v
from trio_ollama.renderers.common import arguments, dumps, image_tags, spaced, thinks, tool_json
from trio_ollama.renderers.qwen3vl import last_query
from trio_ollama.templates import Message

__all__ = ["Qwen35Renderer", "argument_text"]

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


def _reasoning(content: str, thinking: str, think_block: bool) -> tuple[str, str]:
    if think_block and thinking:
        return thinking.strip(), content
    reasoning = ""
    if (close := content.find("</think>")) != -1:
        before = content[:close]
        opened = before.rfind("<think>")
        reasoning = before[opened + len("<think>") :] if opened != -1 else before
        content = content[close + len("</think>") :].lstrip("\n")
    return reasoning.strip(), content


class Qwen35Renderer:
    """`always_think_block`: every past answer keeps its think block, however old and whether
    or not this request thinks (Ollama's `ornith`, Qwen 3.5's code with that one change)."""

    def __init__(self, *, always_think_block: bool = False) -> None:
        self._always_block = always_think_block

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        think: bool | str | None,
    ) -> str:
        out: list[str] = []
        thinking = True if think is None else thinks(think)
        first_system = bool(messages) and messages[0].role == "system"
        if tools:
            out.append("<|im_start|>system\n# Tools\n\nYou have access to the following functions:")
            out.append("\n\n<tools>")
            for tool in tools:
                out.append("\n" + spaced(dumps(tool_json(tool))))
            out.append(TOOLS_OUTRO)
            if first_system and (system := image_tags(messages[0], 0)[0].strip()):
                out.append("\n\n" + system)
            out.append("<|im_end|>\n")
        elif first_system:
            out.append(f"<|im_start|>system\n{image_tags(messages[0], 0)[0].strip()}<|im_end|>\n")
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
                reasoning, content = _reasoning(content, message.thinking, block)
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
                if i == 0 or messages[i - 1].role != "tool":
                    out.append("<|im_start|>user")
                out.append(f"\n<tool_response>\n{content}\n</tool_response>")
                if last or messages[i + 1].role != "tool":
                    out.append("<|im_end|>\n")
            if last and not prefill:
                out.append("<|im_start|>assistant\n")
                out.append("<think>\n" if thinking else "<think>\n\n</think>\n\n")
        return "".join(out)
