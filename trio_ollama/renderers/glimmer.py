"""Glimmer's prompt, as Ollama's `glimmer` renderer writes it: `<|begin_of_text|>`, then
messages `<|start|>HEADER<|message|>BODY<|eot|>` (`<|eom|>` where the same speaker goes on). A
system turn carries the knowledge cutoff and date (when the conversation brings none of its
own), the reasoning strength the request asks for, the tools under Meta's ATEM instructions
and the recipients the model may address; past answers are addressed `to=self` (thinking), to a
tool (a call in ATEM markup) or `to=user`; tool results name their tool. The prompt ends with
`<|start|>assistant`, the header the model completes."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.common import (
    Tools,
    arguments,
    image_tags,
    parameters_json,
    spaced,
    thinks,
)
from trio_ollama.renderers.qwen35 import argument_text
from trio_ollama.templates import Message, Think, ToolCall

__all__ = ["GlimmerRenderer"]

BOS, START, MESSAGE = "<|begin_of_text|>", "<|start|>", "<|message|>"
EOM, EOT = "<|eom|>", "<|eot|>"
DEFAULT_SYSTEM = "You are a helpful AI assistant."
KNOWLEDGE_CUTOFF = "2026-01-04"

TOOLS_INTRO = """In this environment you have access to a set of tools you can use to answer \
the user's question.

You can invoke a function by writing a "<atem:function_calls>" block like the following:
<atem:function_calls>
<atem:invoke name="$FUNCTION_NAME">
<atem:parameter name="$PARAMETER_NAME">$PARAMETER_VALUE</atem:parameter>
...
</atem:invoke>
</atem:function_calls>

String and scalar parameters should be specified as is, while lists and objects should use \
JSON format. Note that spaces for string values are not stripped. The output is not expected \
to be valid XML and is parsed with regular expressions.
Here are the functions available in JSONSchema format:
// Tool metadata
"""

TOOLS_OUTRO = """

Here's an example of how to call a function in the tool set:
(If the tool namespace is not specified, invoke the function directly as \
`example_function_name` rather than `example_tool_name.example_function_name`)

to=example_tool_name.example_function_name

<atem:function_calls>
<atem:invoke name="example_tool_name.example_function_name">
<atem:parameter name="example_parameter_1">value_1</atem:parameter>
<atem:parameter name="example_parameter_2">This is the value for the second parameter
that can span
"multiple" lines
</atem:parameter>
</atem:invoke>
</atem:function_calls>"""

# A system message's own "reasoning effort" is Glimmer's "reasoning strength".
_EFFORT_WORDS = (
    ("Reasoning effort", "Reasoning strength"),
    ("Reasoning Effort", "Reasoning Strength"),
    ("reasoning effort", "reasoning strength"),
    ("REASONING EFFORT", "REASONING STRENGTH"),
)


def _json(value: Any) -> str:
    """The tojson of Transformers 5, as Ollama writes it: Go's JSON, not HTML-escaped, with a
    space after each `:` and `,`."""
    return spaced(gojson.dumps(value, escape_html=False))


def strength(think: bool | str | None) -> str:
    """The reasoning strength `think` asks for: high unless told otherwise, none for no."""
    if think is None:
        return "high"
    if not thinks(think):
        return "none"
    return think if isinstance(think, str) else "high"


def _normalize_effort(text: str) -> str:
    # Go's strings.Replacer: one pass, the first pair matching at each place.
    out: list[str] = []
    i = 0
    while i < len(text):
        for old, new in _EFFORT_WORDS:
            if text.startswith(old, i):
                out.append(new)
                i += len(old)
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _namespaces(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each tool name's first dotted part, once, in order."""
    seen: dict[str, None] = {}
    for tool in tools:
        seen.setdefault(_name(tool).partition(".")[0], None)
    return list(seen)


def _name(tool: Mapping[str, Any]) -> str:
    return str((tool.get("function") or {}).get("name") or "")


def _tool_definitions(tools: Sequence[Mapping[str, Any]]) -> str:
    out = [TOOLS_INTRO]
    for ns in _namespaces(tools):
        out.append(f'{{"name": {_json(ns)}, "description": ""}}\n')
    out.append("// Function schemas")
    for tool in tools:
        fn = tool.get("function") or {}
        params = parameters_json(fn.get("parameters") or {})
        description = _json(fn.get("description") or "")
        out.append(f'\n{{"name": {_json(_name(tool))}, "description": {description}, '
                   f'"parameters": {_json(params)}}}')  # fmt: skip
    out.append(TOOLS_OUTRO)
    return "".join(out)


def _system(
    content: str,
    tools: Sequence[Mapping[str, Any]],
    level: str,
    date: str | None,
) -> str:
    """A system turn: the conversation's own (`date` None), or the default one with `date`."""
    out = [START, "system", MESSAGE]
    if date is None:
        content = _normalize_effort(content)
    out.append(content)
    if date is not None:
        out.append(f"\nKnowledge cutoff: {KNOWLEDGE_CUTOFF}.\nCurrent date: {date}.")
    if date is not None or "reasoning strength" not in content.lower():
        out.append(f"\n\nReasoning strength: {level}.")
    if tools:
        out.append("\n\n" + _tool_definitions(tools))
    recipients = "".join(f', "{ns}.*"' for ns in _namespaces(tools))
    out.append(f'\n\n# Valid recipients: "self"{recipients}, "user".{EOT}')
    return "".join(out)


def _value(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return _json(value)
    return argument_text(value)


def _atem(call: ToolCall) -> str:
    out = [f'<atem:function_calls>\n<atem:invoke name="{call.function.name}">\n']
    for name, value in arguments(call).items():
        out.append(f'<atem:parameter name="{name}">{_value(value)}</atem:parameter>\n')
    out.append("</atem:invoke>\n</atem:function_calls>")
    return "".join(out)


def _tool_result_name(message: Message, messages: Sequence[Message]) -> str:
    """The tool a result answers: its own name, else that of the (last) call its id names,
    else the id itself."""
    if message.tool_name:
        return message.tool_name
    name = message.tool_call_id
    if not name:
        return name
    for other in messages:
        for call in other.tool_calls:
            if call.id == message.tool_call_id:
                name = call.function.name
    return name


class GlimmerRenderer:
    """`today`: the date the default system turn gives (ISO, as Ollama's `time.DateOnly`);
    the local date when the prompt is rendered if not set."""

    def __init__(self, *, today: str | None = None) -> None:
        self._today = today

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        tools = tools or ()
        level = strength(think)
        out = [BOS]
        if not any(m.role == "system" for m in messages):
            today = self._today or datetime.date.today().isoformat()
            out.append(_system(DEFAULT_SYSTEM, tools, level, today))
        offset = 0
        for i, message in enumerate(messages):
            content, offset = image_tags(message, offset)
            same_next = i + 1 < len(messages) and messages[i + 1].role == message.role
            end = EOM if same_next else EOT
            if message.role == "system":
                out.append(_system(content, tools, level, None))
            elif message.role == "user":
                out.append(f"{START}user{MESSAGE}{content}{EOT}")
            elif message.role == "tool":
                name = _tool_result_name(message, messages)
                out.append(f'{START}tool {name}{MESSAGE}<tool_output name="{name}">\n'
                           f"{content}\n</tool_output>{EOT}")  # fmt: skip
            elif message.role == "assistant":
                if message.thinking:
                    out.append(f"{START}assistant to=self{MESSAGE}{message.thinking}{EOM}")
                # A last answer with thinking alone is the model's unfinished thought: it
                # goes on from there.
                if message.tool_calls:
                    for j, call in enumerate(message.tool_calls):
                        last = j == len(message.tool_calls) - 1
                        out.append(f"{START}assistant to={call.function.name}{MESSAGE}"
                                   f"{_atem(call)}{end if last else EOM}")  # fmt: skip
                elif content or not message.thinking:
                    out.append(f"{START}assistant to=user{MESSAGE}{content}{EOT}")
        out.append(START + "assistant")
        return "".join(out)
