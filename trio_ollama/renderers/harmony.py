"""gpt-oss prompts in OpenAI's harmony format: the prompt the Go template of Ollama's gpt-oss
models writes, byte for byte, written in code.

A system message names the model, its knowledge cutoff, today's date and the reasoning effort
(the `think` level; none when thinking is off), describes gpt-oss's own tools (browser,
python) when offered, and lists the valid channels. A developer message follows when the
request offers other tools (a TypeScript-like `namespace functions`) or has system text (its
"Instructions"). Then the conversation: thinking (only after the last user message) on the
analysis channel, answers on the final channel, calls addressed `to=functions.NAME`, tool
results from `functions.NAME`; and `<|start|>assistant` for the model to go on, unless the
last message is the assistant's own, left open for it to continue.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from trio_ollama.renderers.common import Tools
from trio_ollama.templates import (
    Message,
    TemplateError,
    Think,
    Tool,
    ToolProperty,
    collate,
    think_values,
)

__all__ = ["HarmonyRenderer"]

_BROWSER_TOOLS = ("browser.search", "browser.open", "browser.find")
_BUILTIN_TOOLS = frozenset({*_BROWSER_TOOLS, "python"})

_IDENTITY = (
    "You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n"
    "Current date: "
)

_BROWSER = """

## browser

// Tool for browsing.
// The `cursor` appears in brackets before each browsing display: `[{cursor}]`.
// Cite information from the tool using the following format:
// `【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.
// Do not quote more than 10 words directly from the tool output.
// sources=web (default: web)
namespace browser {"""

_BROWSER_FUNCTIONS = {
    "browser.search": """

// Searches for information related to `query` and displays `topn` results.
type search = (_: {
query: string,
topn?: number, // default: 10
source?: string,
}) => any;""",
    "browser.open": """

// Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, \
showing `num_lines` lines.
// Valid link ids are displayed with the formatting: `【{id}†.*】`.
// If `cursor` is not provided, the most recent page is implied.
// If `id` is a string, it is treated as a fully qualified URL associated with `source`.
// If `loc` is not provided, the viewport will be positioned at the beginning of the document \
or centered on the most relevant passage, if available.
// Use this function without `id` to scroll to a new location of an opened page.
type open = (_: {
id?: number | string, // default: -1
cursor?: number, // default: -1
loc?: number, // default: -1
num_lines?: number, // default: -1
view_source?: boolean, // default: false
source?: string,
}) => any;""",
    "browser.find": """

// Finds exact matches of `pattern` in the current page, or the page given by `cursor`.
type find = (_: {
pattern: string,
cursor?: number, // default: -1
}) => any;""",
}

_PYTHON = """

## python

Use this tool to execute Python code in your chain of thought. The code will not be shown to \
the user. This tool should be used for internal reasoning, but not for code that is intended \
to be visible to the user (e.g. when creating plots, tables, or files).

When you send a message containing Python code to python, it will be executed in a stateful \
Jupyter notebook environment. python will respond with the output of the execution or time \
out after 120.0 seconds. The drive at '/mnt/data' can be used to save and persist user files. \
Internet access for this session is UNKNOWN. Depends on the cluster."""

_CHANNELS = (
    "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message."
)
_FUNCTIONS_CHANNEL = "\nCalls to these tools must go to the commentary channel: 'functions'."


def _type(name: str, prop: ToolProperty) -> str:
    if not prop.type:
        # The template indexes the first type: Go's fails on an empty list, and so does this.
        raise TemplateError(f"property {name!r} has no type: index out of range: 0")
    return " | ".join(prop.type)


def _function(tool: Tool) -> str:
    fn = tool.function
    out = "\n" + (f"\n// {fn.description}" if fn.description else "")
    props = fn.parameters.properties
    if not props:
        return out + f"\ntype {fn.name} = () => any;"
    out += f"\ntype {fn.name} = (_: {{"
    for name in sorted(props):  # a Go map: its keys in order
        prop = props[name]
        if prop.description:
            out += f"\n  // {prop.description}"
        out += f"\n  {name}: {_type(name, prop)},"
    return out + "\n}) => any;"


class HarmonyRenderer:
    """`today` gives the date the system message shows (Ollama's `currentDate`: the local
    date when the prompt is made); tests fix it."""

    def __init__(self, today: Callable[[], datetime.date] = datetime.date.today) -> None:
        self._today = today

    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        system, msgs = collate(messages)
        offered = [Tool.from_json(t) for t in tools or ()]
        names = {t.function.name for t in offered}
        others = [t for t in offered if t.function.name not in _BUILTIN_TOOLS]
        out = [self._system(names, think, bool(others))]
        if others or system:
            out.append("<|start|>developer<|message|>")
            if others:
                out.append("# Tools\n\n## functions\n\nnamespace functions {")
                out.extend(_function(t) for t in others)
                out.append("\n\n} // namespace functions")
            if system:
                out.append(f"\n\n# Instructions\n\n{system}")
            out.append("<|end|>")
        out.append(_conversation(msgs))
        return "".join(out)

    def _system(self, names: set[str], think: bool | str | None, functions: bool) -> str:
        thinks, level, is_set = think_values(think)
        out = "<|start|>system<|message|>" + _IDENTITY + self._today().isoformat()
        if is_set and thinks and level:
            out += f"\n\nReasoning: {level}"
        elif not is_set or thinks:
            out += "\n\nReasoning: medium"
        browser = [n for n in _BROWSER_TOOLS if n in names]
        if browser or "python" in names:
            out += "\n\n# Tools"
            if browser:
                out += _BROWSER + "".join(_BROWSER_FUNCTIONS[n] for n in browser)
                out += "\n\n} // namespace browser"
            if "python" in names:
                out += _PYTHON
        out += _CHANNELS
        if functions:
            out += _FUNCTIONS_CHANNEL
        return out + "<|end|>"


def _conversation(msgs: Sequence[Message]) -> str:
    last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
    last = msgs[-1] if msgs else None
    # The template leaves the last message open when it is the assistant's: its answer, or
    # its thinking when it has no answer. The choice holds for every assistant message.
    open_content = last is not None and last.role == "assistant" and bool(last.content)
    open_thinking = (
        last is not None and last.role == "assistant" and not open_content and bool(last.thinking)
    )
    out: list[str] = []
    for i, msg in enumerate(msgs):
        if msg.role == "tool":
            sender = (
                msg.tool_name if msg.tool_name in _BUILTIN_TOOLS else f"functions.{msg.tool_name}"
            )
            out.append(f"<|start|>{sender} to=assistant<|message|>{msg.content}<|end|>")
        elif msg.role == "assistant":
            if msg.thinking and i > last_user:
                out.append(f"<|start|>assistant<|channel|>analysis<|message|>{msg.thinking}")
                out.append("" if open_thinking else "<|end|>")
            if msg.content:
                out.append(f"<|start|>assistant<|channel|>final<|message|>{msg.content}")
                out.append("" if open_content else "<|end|>")
            for call in msg.tool_calls:
                name = call.function.name
                builtin = name in _BUILTIN_TOOLS
                channel, to = ("analysis", name) if builtin else ("commentary", f"functions.{name}")
                out.append(
                    f"<|start|>assistant<|channel|>{channel} to={to} <|constrain|>json<|message|>"
                    f"{call.function.arguments.go_string()}<|call|>"
                )
        elif msg.role == "user":
            out.append(f"<|start|>user<|message|>{msg.content}<|end|>")
    if not (open_content or open_thinking):
        out.append("<|start|>assistant")
    return "".join(out)
