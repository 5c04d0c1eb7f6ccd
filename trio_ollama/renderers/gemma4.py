"""Gemma 4's prompt, as Ollama's `gemma4`, `gemma4-small` and `gemma4-large` renderers write it:
`<|turn>role ... <turn|>` after `<bos>`; a system turn holding `<|think|>` when thinking is on,
the system text and each tool as `<|tool>declaration:NAME{...}<tool|>`; calls and tool results
in Gemma's notation (bare keys, strings between `<|"|>` marks) inside the model's turn.

The declarations follow Gemma's chat template, schema keys sorted and types upper-cased, with
its oddities kept (a union type at the top level is written as the template prints a list).
`gemma4-large` adds an empty thinking block to the generation prompt when not thinking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trio_ollama.gocompat.template.values import fmt_v
from trio_ollama.renderers.common import Tools, arguments, image_tags, thinks
from trio_ollama.templates import Message, Think

__all__ = ["Gemma4Renderer", "gemma4_variant", "strip_thinking"]

Q = '<|"|>'
_STANDARD_KEYS = frozenset({"description", "type", "properties", "required", "nullable"})


def _number(value: int | float) -> str:
    # A JSON number is a float64 in Go: written as an integer when it is one.
    number = float(value)
    if number.is_integer() and -(2**63) <= number < 2**63:
        return str(int(number))
    return fmt_v(number)


def _go_floats(value: Any) -> Any:
    """Numbers as Go's `json.Unmarshal` into `any` holds them (float64), for `%v`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _go_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_go_floats(v) for v in value]
    return value


def _value(value: Any, quote_keys: bool) -> str:
    """A call's argument (`quote_keys` false) or a schema value (keys between marks)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return Q + value + Q
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, Mapping):
        keys = sorted(value)
        return "{" + ",".join(
            (Q + k + Q if quote_keys else k) + ":" + _value(value[k], quote_keys) for k in keys
        ) + "}"  # fmt: skip
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(v, quote_keys) for v in value) + "]"
    return fmt_v(value)


def _type_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _type_names(value: Any) -> list[str]:
    """Ollama's `normalizeTypeNames`: upper-cased; in a list, only the strings."""
    if isinstance(value, str):
        return [value.upper()]
    if isinstance(value, list | tuple):
        return [v.upper() for v in value if isinstance(v, str)]
    return []


def _strings(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _marked(items: Sequence[str]) -> str:
    return "[" + ",".join(Q + item + Q for item in items) + "]"


def _simple_union(prop: Mapping[str, Any]) -> list[str]:
    """The types of an `anyOf` whose branches are bare types, else none."""
    out: list[str] = []
    for branch in prop.get("anyOf") or ():
        branch = branch or {}
        types = _type_list(branch.get("type"))
        bare = not (branch.get("anyOf") or branch.get("items") is not None
                    or branch.get("description") or branch.get("enum")
                    or branch.get("properties") is not None or branch.get("required"))  # fmt: skip
        if not bare or not types:
            return []
        out += [t for t in types if t not in out]
    return out


def _typed(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's top-level property as the template sees it: a union type as the text Jinja
    prints for a list of upper-cased names (Ollama matches that, oddity included)."""
    out: dict[str, Any] = {}
    types = _type_list(prop.get("type")) or _simple_union(prop)
    if types:
        out["type"] = (types[0] if len(types) == 1
                       else "[" + ", ".join(f"'{t.upper()}'" for t in types) + "]")  # fmt: skip
    if prop.get("description"):
        out["description"] = prop["description"]
    if prop.get("enum"):
        out["enum"] = prop["enum"]
    if prop.get("items") is not None:
        out["items"] = prop["items"]
    if isinstance(props := prop.get("properties"), Mapping):
        out["properties"] = _typed_map(props)
    if prop.get("required"):
        out["required"] = prop["required"]
    return out


def _typed_map(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _typed(v or {}) for k, v in props.items()}


def _items(items: Mapping[str, Any]) -> str:
    out: list[str] = []
    for key in sorted(items):
        value = items[key]
        if value is None:
            continue
        if key == "properties":
            inner = _properties(value) if isinstance(value, Mapping) else ""
            out.append("properties:{" + inner + "}")
        elif key == "required":
            out.append("required:" + _marked(_strings(value)))
        elif key == "type":
            names = _type_names(value)
            # No type names still takes its comma, as in Ollama.
            out.append("" if not names else "type:" + (Q + names[0] + Q if len(names) == 1
                                                       else _marked(names)))  # fmt: skip
        else:
            out.append(key + ":" + _value(value, True))
    return ",".join(out)


def _properties(props: Mapping[str, Any]) -> str:
    written: list[str] = []
    for name in sorted(props):
        prop = props[name]
        if name in _STANDARD_KEYS or not isinstance(prop, Mapping):
            continue
        fields: list[str] = []
        description = prop.get("description")
        if isinstance(description, str) and description:
            fields.append("description:" + Q + description + Q)
        names = _type_names(prop.get("type"))
        first = names[0] if names else ""
        if first == "STRING":
            enum = prop.get("enum")
            if isinstance(enum, list | tuple) and enum:
                fields.append(_marked([fmt_v(_go_floats(v)) for v in enum]))
                fields[-1] = "enum:" + fields[-1]
        elif first == "ARRAY":
            items = prop.get("items")
            if isinstance(items, Mapping) and items:
                fields.append("items:{" + _items(items) + "}")
        if prop.get("nullable") is True:
            fields.append("nullable:true")
        if first == "OBJECT":
            nested = prop.get("properties")
            # Without a properties map the template reads the property's own keys as one.
            inner = _properties(nested if isinstance(nested, Mapping) else prop)
            fields.append("properties:{" + inner + "}")
            if required := _strings(prop.get("required")):
                fields.append("required:" + _marked(required))
        if names:
            fields.append("type:" + (Q + names[0] + Q if len(names) == 1 else _marked(names)))
        written.append(name + ":{" + ",".join(fields) + "}")
    return ",".join(written)


def _declaration(tool: Mapping[str, Any]) -> str:
    fn = tool.get("function") or {}
    params = fn.get("parameters") or {}
    out = ["<|tool>declaration:", fn.get("name") or "", "{description:", Q,
           fn.get("description") or "", Q]  # fmt: skip
    props = params.get("properties")
    kind = params.get("type") or ""
    if props is not None or kind:
        fields: list[str] = []
        if isinstance(props, Mapping) and props:
            fields.append("properties:{" + _properties(_typed_map(props)) + "}")
        if required := params.get("required"):
            fields.append("required:" + _marked(required))
        if kind:
            fields.append("type:" + Q + kind.upper() + Q)
        out.append(",parameters:{" + ",".join(fields) + "}")
    out.append("}<tool|>")
    return "".join(out)


def strip_thinking(text: str) -> str:
    """Content without its `<|channel>...<channel|>` blocks (an unclosed one drops the rest)."""
    out: list[str] = []
    while (start := text.find("<|channel>")) != -1:
        out.append(text[:start])
        end = text.find("<channel|>", start)
        if end == -1:
            text = ""
            break
        text = text[end + len("<channel|>") :]
    out.append(text)
    return "".join(out).strip()


def _tagged(message: Message, content: str, offset: int) -> tuple[str, int]:
    if not message.images:
        return content, offset
    return image_tags(attrs.evolve(message, content=content), offset)


def _response_name(message: Message, calls: Sequence[Any]) -> str:
    name = message.tool_name or "unknown"
    if message.tool_call_id:
        for call in calls:
            if call.id == message.tool_call_id:
                return str(call.function.name)
    return name


class Gemma4Renderer:
    def __init__(self, *, empty_block_on_nothink: bool = False) -> None:
        self._empty_block = empty_block_on_nothink

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        out = ["<bos>"]
        loop = list(messages)
        has_system = bool(loop) and loop[0].role in ("system", "developer")
        system = loop.pop(0).content if has_system else ""
        thinking = thinks(think)
        if has_system or tools or thinking:
            out.append("<|turn>system\n")
            if thinking:
                out.append("<|think|>\n")
            out.append(system.strip())
            out.extend(_declaration(t) for t in tools or ())
            out.append("<turn|>\n")
        last_user = max((i for i, m in enumerate(loop) if m.role == "user"), default=-1)
        offset = 0
        previous = ""  # what the last turn ended with: a call, or tool results
        previous_role = ""
        for i, message in enumerate(loop):
            if message.role == "tool":
                continue  # folded into the turn of the call it answers
            previous = ""
            role = "model" if message.role == "assistant" else message.role
            if not (role == "model" and previous_role == "assistant"):
                out.append(f"<|turn>{role}\n")
            if message.role == "assistant" and message.thinking and i > last_user:
                out.append(f"<|channel>thought\n{message.thinking}\n<channel|>")
            calls = message.tool_calls
            for call in calls:
                args = arguments(call)
                written = ",".join(f"{k}:{_value(args[k], False)}" for k in sorted(args))
                out.append(f"<|tool_call>call:{call.function.name}{{{written}}}<tool_call|>")
            if calls:
                previous = "tool_call"
            answered = False
            k = i + 1
            while calls and k < len(loop) and loop[k].role == "tool":
                response, offset = _tagged(loop[k], loop[k].content, offset)
                name = _response_name(loop[k], calls)
                out.append(f"<|tool_response>response:{name}{{value:{Q}{response}{Q}}}"
                           "<tool_response|>")  # fmt: skip
                answered, previous = True, "tool_response"
                k += 1
            had_content = False
            if role == "model":
                if message.content or message.images:
                    content = strip_thinking(message.content)
                    text, offset = _tagged(message, content, offset)
                    out.append(text)
                    had_content = bool(content.strip()) or bool(message.images)
            else:
                content = message.content.strip()
                text, offset = _tagged(message, content, offset)
                out.append(text)
                had_content = bool(content) or bool(message.images)
            next_role = next((m.role for m in loop[i + 1 :] if m.role != "tool"), "")
            continues = (role == "model" and next_role == "assistant"
                         and (not calls or answered))  # fmt: skip
            if previous == "tool_call" and not answered:
                out.append("<|tool_response>")
            elif not continues and not (answered and not had_content and not next_role):
                out.append("<turn|>\n")
            previous_role = message.role
        if previous not in ("tool_response", "tool_call"):
            out.append("<|turn>model\n")
            if self._empty_block and not thinking:
                out.append("<|channel>thought\n<channel|>")
        elif previous == "tool_response" and thinking:
            out.append("<|channel>thought\n")
        return "".join(out)


# Ollama's `resolveGemma4Renderer` (server/renderer_resolution.go): a model created with
# RENDERER gemma4 gets the small prompt (e2b/e4b) or the large one (12b and up, which adds an
# empty thought block when not thinking), by a size in its name, else by its parameter size.
_LARGE_FROM = 12_000_000_000
_UNITS = {"B": 1_000_000_000, "M": 1_000_000, "K": 1_000}


def gemma4_variant(names: Sequence[str], parameter_size: str) -> str:
    """`gemma4-small` or `gemma4-large` for a model called `names` (its short name first,
    then its full one) whose parameter size reads like `12B`; small when nothing says."""
    for name in names:
        lower = name.lower()
        if "e2b" in lower or "e4b" in lower:
            return "gemma4-small"
        if any(size in lower for size in ("12b", "26b", "31b")):
            return "gemma4-large"
    unit = _UNITS.get(parameter_size[-1:].upper())
    try:
        count = float(parameter_size[:-1]) * unit if unit else None
    except ValueError:
        count = None
    return "gemma4-large" if count is not None and count >= _LARGE_FROM else "gemma4-small"
