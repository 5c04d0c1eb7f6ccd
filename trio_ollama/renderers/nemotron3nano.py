"""Nemotron 3 Nano's prompt, as Ollama's `nemotron-3-nano` and `nemotron-3.5-nano` renderers
write it: ChatML, the tools as `<function>` blocks under Qwen 3 Coder's instructions, calls as
`<function=...><parameter=...>` blocks, past thinking cut before the last question, and the
answer opened with `<think>` (or an empty think block when not thinking)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.template import go_json_value
from trio_ollama.gocompat.template.values import fmt_v
from trio_ollama.renderers.common import Tools, arguments, image_tags, thinks
from trio_ollama.renderers.qwen35 import TOOLS_OUTRO
from trio_ollama.templates import Message, Think

__all__ = ["Nemotron3NanoRenderer"]


def _quote(text: str) -> str:
    return gojson.quote(text)


def _python_json(value: Any, *, ordered: bool = False) -> str:
    """Ollama's `pythonJSON`: JSON with Python's spacing (`, ` and `: `); a Go map's keys
    sorted, a schema's properties (`ordered`) in their order."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return gojson.dumps(value)
    if isinstance(value, Mapping):
        keys = list(value) if ordered else sorted(value)
        return "{" + ", ".join(f"{_quote(k)}: {_python_json(value[k])}" for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_python_json(v) for v in value) + "]"
    return _python_json(go_json_value(value))


def _property(prop: Mapping[str, Any]) -> str:
    """A schema property as `pythonJSON` writes an `api.ToolProperty` (its struct's order)."""
    parts = []
    if prop.get("anyOf"):
        parts.append('"anyOf": [' + ", ".join(_property(p) for p in prop["anyOf"]) + "]")
    types = prop.get("type")
    types = [types] if isinstance(types, str) else list(types or ())
    if types:
        parts.append('"type": ' + _python_json(types[0] if len(types) == 1 else types))
    if prop.get("items") is not None:
        parts.append('"items": ' + _python_json(prop["items"]))
    if prop.get("description"):
        parts.append('"description": ' + _python_json(prop["description"]))
    if prop.get("enum"):
        parts.append('"enum": ' + _python_json(prop["enum"]))
    if isinstance(props := prop.get("properties"), Mapping):
        parts.append('"properties": ' + _properties(props))
    if prop.get("required"):
        parts.append('"required": ' + _python_json(prop["required"]))
    return "{" + ", ".join(parts) + "}"


def _properties(props: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{_quote(k)}: {_property(v or {})}" for k, v in props.items()) + "}"


def _template_value(value: Any) -> str:
    """How the template prints a value: JSON for objects and arrays, Python's `str()` else."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, Mapping | list | tuple):
        return _python_json(value)
    if isinstance(value, int):
        value = float(value)  # a JSON number is a float64 in Go
    return fmt_v(value)


def _tools(tools: Sequence[Mapping[str, Any]]) -> str:
    out = ["# Tools\n\nYou have access to the following functions:\n\n<tools>"]
    for tool in tools:
        fn = tool.get("function") or {}
        params = fn.get("parameters") or {}
        out.append(f"\n<function>\n<name>{fn.get('name') or ''}</name>")
        if fn.get("description"):
            out.append(f"\n<description>{fn['description'].strip()}</description>")
        out.append("\n<parameters>")
        for name, prop in (params.get("properties") or {}).items():
            prop = prop or {}
            out.append(f"\n<parameter>\n<name>{name}</name>")
            types = prop.get("type")
            types = [types] if isinstance(types, str) else list(types or ())
            if types:
                shown = ", ".join(f"'{t}'" for t in types)
                out.append(f"\n<type>{types[0] if len(types) == 1 else f'[{shown}]'}</type>")
            if prop.get("description"):
                out.append(f"\n<description>{prop['description'].strip()}</description>")
            if prop.get("enum"):
                out.append(f"\n<enum>{_python_json(prop['enum'])}</enum>")
            if prop.get("anyOf"):
                any_of = ", ".join(_property(p) for p in prop["anyOf"])
                out.append(f"\n<anyOf>[{any_of}]</anyOf>")
            if prop.get("items") is not None:
                out.append(f"\n<items>{_python_json(prop['items'])}</items>")
            if isinstance(props := prop.get("properties"), Mapping):
                out.append(f"\n<properties>{_properties(props)}</properties>")
            if prop.get("required"):
                out.append(f"\n<required>{_python_json(prop['required'])}</required>")
            out.append("\n</parameter>")
        if params.get("$defs") is not None:
            out.append(f"\n<$defs>{_template_value(params['$defs'])}</$defs>")
        if params.get("items") is not None:
            out.append(f"\n<items>{_template_value(params['items'])}</items>")
        if params.get("required"):
            out.append(f"\n<required>{_python_json(params['required'])}</required>")
        out.append("\n</parameters>\n</function>")
    out.append(TOOLS_OUTRO)
    return "".join(out)


def _strip_toggles(text: str) -> str:
    text = text.replace("</think>", "<_end_think>").replace("/think", "").replace("/no_think", "")
    return text.replace("<_end_think>", "</think>")


class Nemotron3NanoRenderer:
    def __init__(self, *, v35: bool) -> None:
        self._v35 = v35

    def _thinking(self, messages: Sequence[Message], think: bool | str | None) -> bool:
        enabled = think is None or thinks(think)
        if self._v35:
            return enabled
        for message in messages:
            if message.role in ("user", "system"):
                if "/think" in message.content.replace("</think>", ""):
                    enabled = True
                elif "/no_think" in message.content:
                    enabled = False
        return enabled

    def _content(self, message: Message) -> str:
        content = message.content
        if message.thinking:
            if self._v35:
                return f"<think>\n{message.thinking}</think>{content}"
            return f"<think>\n{message.thinking}\n</think>\n{content}"
        if "<think>" not in content and "</think>" not in content:
            return "<think></think>" + content
        return content

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        thinking = self._thinking(messages, think)
        medium = self._v35 and think == "medium"
        system = ""
        rest = list(messages)
        if rest and rest[0].role == "system":
            system = rest[0].content if self._v35 else _strip_toggles(rest[0].content)
            rest = rest[1:]
        last_user = max((i for i, m in enumerate(rest) if m.role == "user"), default=-1)
        out = ["<|im_start|>system\n", system]
        if tools:
            out.append(("\n\n" if system else "") + _tools(tools))
        out.append("<|im_end|>\n")
        offset = 0
        for i, message in enumerate(rest):
            if message.role == "assistant":
                content = self._content(message)
                cut = i < last_user
                out.append("<|im_start|>assistant\n")
                if message.tool_calls:
                    if not content.strip():
                        out.append("<think></think>")
                    elif not cut:
                        out.append(content.strip() + "\n")
                    else:
                        if "</think>" in content:
                            content = content.split("</think>")[-1]
                        elif "<think>" in content:
                            content = content.split("<think>")[0]
                        out.append(("<think></think>" + content.strip()).strip() + "\n")
                    for call in message.tool_calls:
                        out.append(f"<tool_call>\n<function={call.function.name}>\n")
                        for name, value in arguments(call).items():
                            out.append(
                                f"<parameter={name}>\n{_template_value(value)}\n</parameter>\n"
                            )
                        out.append("</function>\n</tool_call>\n")
                else:
                    if cut and "<think>" in content and "</think>" in content:
                        content = "<think></think>" + content.split("</think>")[-1]
                    out.append(content.strip())
                out.append("<|im_end|>\n")
            elif message.role in ("user", "system"):
                content, _ = image_tags(message, offset)
                if not self._v35:
                    content = _strip_toggles(content).strip()
                elif message.role == "user" and i == last_user and medium:
                    content += "\n\n{reasoning effort: efficient}"
                offset += len(message.images)
                out.append(f"<|im_start|>{message.role}\n{content}<|im_end|>\n")
            elif message.role == "tool":
                content, _ = image_tags(message, offset)
                offset += len(message.images)
                if i > 0 and rest[i - 1].role != "tool":
                    out.append("<|im_start|>user\n")
                out.append(f"<tool_response>\n{content}\n</tool_response>\n")
                if not (i + 1 < len(rest) and rest[i + 1].role == "tool"):
                    out.append("<|im_end|>\n")
            else:
                out.append(f"<|im_start|>{message.role}\n{message.content}<|im_end|>\n")
        out.append("<|im_start|>assistant\n" + ("<think>\n" if thinking else "<think></think>"))
        return "".join(out)
