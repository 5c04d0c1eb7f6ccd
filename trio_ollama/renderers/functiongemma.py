"""FunctionGemma's prompt, as Ollama's `functiongemma` renderer writes it: Gemma turns after
`<bos>`, the tools as `<start_function_declaration>` blocks in a developer turn, calls and tool
results in FunctionGemma's own notation (`key:value`, strings between `<escape>` marks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat.template.values import fmt_v
from trio_ollama.renderers.common import Tools, arguments
from trio_ollama.templates import Message, Think

__all__ = ["FunctionGemmaRenderer"]

DEFAULT_SYSTEM = "You can do function calling with the following functions:"
ESC = "<escape>"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return ESC + value + ESC
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # A JSON number is a float64 in Go: written as an integer when it is one.
        if float(value).is_integer() and abs(value) < 2**63:
            return str(int(value))
        return fmt_v(float(value))
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_value(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return fmt_v(value)


def _declaration(tool: Mapping[str, Any]) -> str:
    fn = tool.get("function") or {}
    params = fn.get("parameters") or {}
    out = [f"<start_function_declaration>declaration:{fn.get('name') or ''}{{"]
    out.append(f"description:{ESC}{fn.get('description') or ''}{ESC}")
    props = params.get("properties")
    kind = params.get("type") or ""
    if props is not None or kind:
        fields = []
        if props:
            written = []
            for name in sorted(props):
                prop = props[name] or {}
                text = f"{name}:{{description:{ESC}{prop.get('description') or ''}{ESC}"
                types = prop.get("type")
                first = types if isinstance(types, str) else (types or [None])[0]
                if first is not None:
                    text += f",type:{ESC}{first.upper()}{ESC}"
                written.append(text + "}")
            fields.append("properties:{" + ",".join(written) + "}")
        if required := params.get("required"):
            fields.append("required:[" + ",".join(ESC + r + ESC for r in required) + "]")
        if kind:
            fields.append(f"type:{ESC}{kind.upper()}{ESC}")
        out.append(",parameters:{" + ",".join(fields) + "}")
    out.append("}<end_function_declaration>")
    return "".join(out)


def _call_text(message: Message) -> str:
    out = []
    for call in message.tool_calls:
        args = arguments(call)
        written = ",".join(f"{k}:{_value(args[k])}" for k in sorted(args))
        out.append(
            f"<start_function_call>call:{call.function.name}{{{written}}}<end_function_call>"
        )
    return "".join(out)


class FunctionGemmaRenderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        out = ["<bos>"]
        system = ""
        rest = list(messages)
        if rest and rest[0].role in ("system", "developer"):
            system, rest = rest[0].content, rest[1:]
        if system or tools:
            out.append("<start_of_turn>developer\n" + system.strip())
            if tools:
                if system:
                    out.append("\n")
                if system.strip() != DEFAULT_SYSTEM:
                    out.append(DEFAULT_SYSTEM)
            out.extend(_declaration(t) for t in tools or ())
            out.append("<end_of_turn>\n")
        previous = ""
        for i, message in enumerate(rest):
            if message.role == "assistant":
                if previous != "tool_response":
                    out.append("<start_of_turn>model\n")
                previous = ""
                out.append(message.content.strip())
                if message.tool_calls:
                    out.append(_call_text(message))
                    if i + 1 < len(rest) and rest[i + 1].role == "tool":
                        out.append("<start_function_response>")
                        previous = "tool_call"
                    else:
                        out.append("<end_of_turn>\n")
                else:
                    out.append("<end_of_turn>\n")
            elif message.role == "user":
                if previous != "tool_response":
                    out.append("<start_of_turn>user\n")
                previous = ""
                out.append(message.content.strip() + "<end_of_turn>\n")
            elif message.role == "tool":
                name = ""
                for j in range(i - 1, -1, -1):
                    if rest[j].role == "assistant" and rest[j].tool_calls:
                        k = sum(1 for m in rest[j + 1 : i] if m.role == "tool")
                        if k < len(rest[j].tool_calls):
                            name = rest[j].tool_calls[k].function.name
                        break
                if previous != "tool_call":
                    out.append("<start_function_response>")
                out.append(f"response:{name}{{{_value(message.content)}}}<end_function_response>")
                previous = "tool_response"
            else:
                out.append(
                    f"<start_of_turn>{message.role}\n{message.content.strip()}<end_of_turn>\n"
                )
        if previous != "tool_response":
            out.append("<start_of_turn>model\n")
        return "".join(out)
