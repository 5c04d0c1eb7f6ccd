"""GLM-4.7's prompt, as Ollama's built-in `glm-4.7` renderer writes it: `[gMASK]<sop>`, tools
as JSON lines (Go's compact JSON with a blank after each `:` and `,`), calls as
`<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>`, thinking kept in
every assistant turn, and the prompt ending `<think>` unless the request turns thinking off."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.common import Tools
from trio_ollama.renderers.json_spaces import call_arguments, marshal_with_spaces
from trio_ollama.templates import Message, Think, thinks
from trio_ollama.templates.chat import Tool, ToolCall

__all__ = ["GLM47Renderer", "tool_arguments", "tools_section"]

_CALL_FORMAT = (
    "For each function call, output the function name and arguments within the following XML"
    " format:\n<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}"
    "</arg_value><arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>...</tool_call>"
)


def tools_section(tools: Sequence[Mapping[str, Any]] | None) -> str:
    """The system block listing the tools, shared by GLM-4.7 and GLM-OCR."""
    if not tools:
        return ""
    lines = "".join(marshal_with_spaces(Tool.from_json(t).go_json()) + "\n" for t in tools)
    return (
        "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user"
        " query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{lines}</tools>\n\n{_CALL_FORMAT}"
    )


def tool_arguments(call: ToolCall) -> str:
    """A call's arguments as GLM writes them, in the call's order: strings as they are, the
    rest as JSON."""
    out = []
    for key, value in call_arguments(call).items():
        text = value if isinstance(value, str) else gojson.dumps(value)
        out.append(f"<arg_key>{key}</arg_key><arg_value>{text}</arg_value>")
    return "".join(out)


class GLM47Renderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        out = ["[gMASK]<sop>", tools_section(tools)]
        for i, msg in enumerate(messages):
            if msg.role == "user":
                out.append("<|user|>" + msg.content)
            elif msg.role == "assistant":
                out.append("<|assistant|>")
                out.append(f"<think>{msg.thinking}</think>" if msg.thinking else "</think>")
                out.append(msg.content)
                for call in msg.tool_calls:
                    out.append(f"<tool_call>{call.function.name}{tool_arguments(call)}</tool_call>")
            elif msg.role == "tool":
                if i == 0 or messages[i - 1].role != "tool":
                    out.append("<|observation|>")
                out.append(f"<tool_response>{msg.content}</tool_response>")
            elif msg.role == "system":
                out.append("<|system|>" + msg.content)
        off = think is not None and not thinks(think)
        out.append("<|assistant|>" + ("</think>" if off else "<think>"))
        return "".join(out)
