"""What several renderers share: tools and arguments as Ollama's `json.Marshal` writes them (its
structs' field order; properties and arguments in the order the client sent them, as Ollama's
ordered maps keep them), and `[img-N]` image tags; the spaced JSON some families read and a
call's arguments are json_spaces', passed on here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.template import go_json_value
from trio_ollama.renderers.json_spaces import call_arguments as arguments
from trio_ollama.renderers.json_spaces import spaced
from trio_ollama.templates import Message

__all__ = [
    "RenderError", "Tools", "arguments", "dumps", "image_tags", "spaced", "thinks", "tool_json"
]  # fmt: skip

dumps = gojson.dumps

# The request's tools as every renderer's `render` takes them: None when it sent none.
Tools: TypeAlias = Sequence[Mapping[str, Any]] | None


class RenderError(ValueError):
    """A conversation a renderer refuses, as Ollama's does: the error reaches the client as it
    is written (Ollama answers 500 with it)."""


def thinks(think: bool | str | None) -> bool:
    """Ollama's `ThinkValue.Bool()`: a level is a yes, no value and other text a no."""
    if isinstance(think, str):
        return think in ("high", "medium", "low", "max")
    return bool(think)


def _types(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def property_json(prop: Mapping[str, Any]) -> dict[str, Any]:
    """An `api.ToolProperty`, marshalled."""
    out: dict[str, Any] = {}
    if prop.get("anyOf"):
        out["anyOf"] = [property_json(p) for p in prop["anyOf"]]
    if types := _types(prop.get("type")):
        out["type"] = types[0] if len(types) == 1 else types
    if prop.get("items") is not None:
        out["items"] = go_json_value(prop["items"])
    if prop.get("description"):
        out["description"] = prop["description"]
    if prop.get("enum"):
        out["enum"] = go_json_value(prop["enum"])
    if isinstance(props := prop.get("properties"), Mapping):
        out["properties"] = {k: property_json(v or {}) for k, v in props.items()}
    if prop.get("required"):
        out["required"] = list(prop["required"])
    return out


def parameters_json(params: Mapping[str, Any]) -> dict[str, Any]:
    """An `api.ToolFunctionParameters`, marshalled."""
    out: dict[str, Any] = {"type": params.get("type") or ""}
    if params.get("$defs") is not None:
        out["$defs"] = go_json_value(params["$defs"])
    if params.get("items") is not None:
        out["items"] = go_json_value(params["items"])
    if params.get("required"):
        out["required"] = list(params["required"])
    props = params.get("properties")
    out["properties"] = (
        {k: property_json(v or {}) for k, v in props.items()}
        if isinstance(props, Mapping)
        else None
    )
    return out


def function_json(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An `api.ToolFunction`, marshalled."""
    fn = tool.get("function") or {}
    out: dict[str, Any] = {"name": fn.get("name") or ""}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["parameters"] = parameters_json(fn.get("parameters") or {})
    return out


def tool_json(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An `api.Tool`, marshalled."""
    out: dict[str, Any] = {"type": tool.get("type") or ""}
    if tool.get("items") is not None:
        out["items"] = go_json_value(tool["items"])
    out["function"] = function_json(tool)
    return out


def image_tags(message: Message, offset: int) -> tuple[str, int]:
    """Ollama's `renderContentWithImageTags`: `[img]` placeholders numbered in order, tags for
    the other images before the text; and the next image's number."""
    content, count = message.content, len(message.images)
    if count == 0:
        return content, offset
    if "[img-" in content:
        return content, offset + count
    prefix: list[str] = []
    for i in range(count):
        tag = f"[img-{offset + i}]"
        if "[img]" in content:
            content = content.replace("[img]", tag, 1)
        else:
            prefix.append(tag)
    if prefix and content and not content[0].isspace():
        prefix.append(" ")
    return "".join(prefix) + content, offset + count
