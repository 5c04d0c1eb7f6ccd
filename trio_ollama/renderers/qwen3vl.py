"""Qwen 3 VL's prompt, as Ollama's `qwen3-vl-instruct` and `qwen3-vl-thinking` renderers write
it: ChatML, the tools as spaced JSON in the system turn, calls as JSON in `<tool_call>`, tool
results in a user turn; the thinking variant opens `<think>` for the answer."""

from __future__ import annotations

from collections.abc import Sequence

from trio_ollama.renderers.common import (
    Tools,
    arguments,
    dumps,
    image_tags,
    spaced,
    thinks,
    tool_json,
)
from trio_ollama.templates import Message, Think

__all__ = ["Qwen3VLRenderer", "last_query"]

TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments"
    " within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


def is_query(message: Message, *, strip: bool) -> bool:
    """Whether a message is the user's and not only a tool's answer (`<tool_response>...`)."""
    if message.role != "user":
        return False
    content = image_tags(message, 0)[0]
    if strip:
        content = content.strip()
    return not (content.startswith("<tool_response>") and content.endswith("</tool_response>"))


def last_query(messages: Sequence[Message], *, strip: bool) -> int:
    """The last user message that is not only a tool's answer."""
    for i in range(len(messages) - 1, -1, -1):
        if is_query(messages[i], strip=strip):
            return i
    return len(messages) - 1


def tool_response(messages: Sequence[Message], i: int, content: str) -> str:
    """Tool message `i` as the Qwen family writes it: a run of them shares one user turn."""
    out = "<|im_start|>user" if i == 0 or messages[i - 1].role != "tool" else ""
    out += f"\n<tool_response>\n{content}\n</tool_response>"
    if i == len(messages) - 1 or messages[i + 1].role != "tool":
        out += "<|im_end|>\n"
    return out


class Qwen3VLRenderer:
    def __init__(self, *, thinking: bool) -> None:
        self._thinking = thinking

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        out: list[str] = []
        thinking = self._thinking if think is None else thinks(think)
        system = messages[0].content if messages and messages[0].role == "system" else None
        if tools:
            out.append("<|im_start|>system\n")
            if system is not None:
                out.append(system + "\n\n")
            out.append(TOOLS_INTRO)
            for tool in tools:
                out.append("\n" + spaced(dumps(tool_json(tool))))
            out.append(TOOLS_OUTRO)
        elif system is not None:
            out.append(f"<|im_start|>system\n{system}<|im_end|>\n")
        query = last_query(messages, strip=False)
        offset = 0
        for i, message in enumerate(messages):
            content, offset = image_tags(message, offset)
            last = i == len(messages) - 1
            prefill = last and message.role == "assistant"
            if message.role == "user" or (message.role == "system" and i != 0):
                out.append(f"<|im_start|>{message.role}\n{content}<|im_end|>\n")
            elif message.role == "assistant":
                reasoning = message.thinking if thinking else ""
                if thinking and i > query and (last or reasoning):
                    out.append("<|im_start|>assistant\n<think>\n" + reasoning.strip("\n"))
                    if content:
                        out.append("\n</think>\n\n" + content.lstrip("\n"))
                else:
                    out.append("<|im_start|>assistant\n" + content)
                for j, call in enumerate(message.tool_calls):
                    if j > 0 or content:
                        out.append("\n")
                    out.append(f'<tool_call>\n{{"name": "{call.function.name}", "arguments": ')
                    out.append(spaced(dumps(arguments(call))) + "}\n</tool_call>")
                if not prefill:
                    out.append("<|im_end|>\n")
            elif message.role == "tool":
                out.append(tool_response(messages, i, content))
            if last and not prefill:
                out.append("<|im_start|>assistant\n")
                if thinking:
                    out.append("<think>\n")
        return "".join(out)
