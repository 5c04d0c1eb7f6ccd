"""LFM2's prompt, as Ollama's `lfm2` and `lfm2-thinking` renderers write it: ChatML after
`<|startoftext|>`, the tools' functions as spaced JSON in the system turn, calls in Python
between `<|tool_call_start|>` and `<|tool_call_end|>`, thinking kept only where it counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.common import (
    Tools,
    arguments,
    function_json,
    image_tags,
    spaced,
    thinks,
    tool_json,
)
from trio_ollama.templates import Message, Think

__all__ = ["LFM2Renderer"]

CALL_START, CALL_END = "<|tool_call_start|>", "<|tool_call_end|>"
RESPONSE_START, RESPONSE_END = "<|tool_response_start|>", "<|tool_response_end|>"


def _json(value: Any) -> str:
    """Ollama's `lfm2JSON`: JSON without HTML escapes, a space after each `:` and `,` outside
    strings that no blank follows (Go's compact JSON has no blank outside strings)."""
    return spaced(gojson.dumps(value, escape_html=False))


def _calls(message: Message) -> str:
    written = []
    for call in message.tool_calls:
        args = arguments(call)
        pairs = ",".join(f"{k}={_json(args[k])}" for k in sorted(args))
        written.append(f"{call.function.name}({pairs})")
    return f"{CALL_START}[{','.join(written)}]{CALL_END}"


class LFM2Renderer:
    def __init__(self, *, thinking: bool) -> None:
        self._thinking = thinking

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        out = ["<|startoftext|>"]
        system = ""
        start = 0
        if messages and messages[0].role == "system":
            system, start = messages[0].content, 1
        if tools:
            if system:
                system += "\n"
            schemas = [
                _json(function_json(t) if (t.get("function") or {}).get("name") else tool_json(t))
                for t in tools
            ]
            system += "List of tools: <|tool_list_start|>[" + ", ".join(schemas)
            system += "]<|tool_list_end|>"
        if system:
            out.append(f"<|im_start|>system\n{system}<|im_end|>\n")
        keep_thinking = self._thinking and thinks(think)
        last_assistant = next(
            (i for i in range(len(messages) - 1, start - 1, -1) if messages[i].role == "assistant"),
            -1,
        )
        offset = sum(len(m.images) for m in messages[:start])
        for i in range(start, len(messages)):
            message = messages[i]
            prefill = i == len(messages) - 1 and message.role == "assistant"
            out.append(f"<|im_start|>{message.role}\n")
            content, offset = image_tags(message, offset)
            if message.role == "assistant" and message.tool_calls and CALL_START not in content:
                sep = "" if not content.strip() else "\n"
                content = _calls(message) + sep + content
            if (self._thinking and message.role == "assistant" and message.thinking
                    and "</think>" not in content):  # fmt: skip
                content = f"<think>{message.thinking}</think>{content}"
            close = content.rfind("</think>")
            past = message.role == "assistant" and i != last_assistant
            if past and not keep_thinking and close >= 0:
                content = content[close + len("</think>") :].strip()
            if message.role == "tool" and RESPONSE_START not in content:
                content = RESPONSE_START + content + RESPONSE_END
            out.append(content)
            if not prefill:
                out.append("<|im_end|>\n")
        if not (messages and messages[-1].role == "assistant"):
            out.append("<|im_start|>assistant\n")
        return "".join(out)
