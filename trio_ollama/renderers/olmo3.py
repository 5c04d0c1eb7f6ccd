"""Olmo 3's prompt, as Ollama's `olmo3` and `olmo3.1` renderers write it: ChatML, the tools as
spaced JSON in `<functions>` in the system turn (a default one when the conversation has
none), calls as `name(key=json, ...)` in `<function_calls>`, tool results from `environment`."""

from __future__ import annotations

from collections.abc import Sequence

from trio_ollama.renderers.common import Tools, arguments, dumps, spaced, tool_json
from trio_ollama.templates import Message, Think

__all__ = ["Olmo3Renderer"]

DEFAULT_SYSTEM = "You are a helpful function-calling AI assistant. "
DEFAULT_SYSTEM_31 = (
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, and"
    " your model weights are available at https://huggingface.co/allenai. "
)
NO_FUNCTIONS = "You do not currently have access to any functions. "
WITH_FUNCTIONS = (
    "You are provided with function signatures within <functions></functions> XML tags. You may"
    " call one or more functions to assist with the user query. Output any function calls within"
    " <function_calls></function_calls> XML tags. Do not make assumptions about what values to"
    " plug into functions."
)


class Olmo3Renderer:
    def __init__(self, *, extended_system: bool) -> None:
        self._default = DEFAULT_SYSTEM_31 if extended_system else DEFAULT_SYSTEM

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        systems = [m for m in messages if m.role == "system"]
        rest = [m for m in messages if m.role != "system"]
        functions = spaced(dumps([tool_json(t) for t in tools])) if tools else ""
        out = ["<|im_start|>system\n"]
        if systems:
            out.append(systems[0].content)
            if tools:
                out.append(f"<functions>{functions}</functions>")
        elif tools:
            out.append(f"{self._default}{WITH_FUNCTIONS}<functions>{functions}</functions>")
        else:
            out.append(f"{self._default}{NO_FUNCTIONS}<functions></functions>")
        out.append("<|im_end|>\n")
        for i, message in enumerate(rest):
            if message.role == "user":
                out.append(f"<|im_start|>user\n{message.content}<|im_end|>\n")
            elif message.role == "assistant":
                out.append("<|im_start|>assistant\n" + message.content)
                if message.tool_calls:
                    calls = []
                    for call in message.tool_calls:
                        args = arguments(call)
                        written = ", ".join(f"{k}={dumps(args[k])}" for k in sorted(args))
                        calls.append(f"{call.function.name}({written})")
                    out.append("<function_calls>" + "\n".join(calls) + "</function_calls>")
                if i != len(rest) - 1 or message.tool_calls:
                    out.append("<|im_end|>\n")
            elif message.role == "tool":
                out.append(f"<|im_start|>environment\n{message.content}<|im_end|>\n")
        last = rest[-1] if rest else None
        if not (last and last.role == "assistant" and not last.tool_calls and last.content):
            out.append("<|im_start|>assistant\n")
        return "".join(out)
