"""Cohere's prompt (North, Command A 2026), as Ollama's built-in `cohere` renderer writes it: a
system turn holding the first system message and an "Available Tools" list (written even when
empty), each turn's body in `<|START_TEXT|>`, calls as an `<|START_ACTION|>` JSON array and
results as a `<|START_TOOL_RESULT|>` one, with the calls' ids renumbered from 0 across the
conversation. The prompt ends in `<|START_THINKING|>` (closed at once when the request turns
reasoning off), or in a final assistant message left open for the model to continue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.common import Tools
from trio_ollama.renderers.json_spaces import call_arguments, marshal_with_spaces
from trio_ollama.templates import Message, Think, thinks
from trio_ollama.templates.chat import Tool

__all__ = ["CohereRenderer"]

_TURN = "<|START_OF_TURN_TOKEN|>"
_END = "<|END_OF_TURN_TOKEN|>"
_SYSTEM, _USER, _CHATBOT = "<|SYSTEM_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"
_TEXT, _END_TEXT = "<|START_TEXT|>", "<|END_TEXT|>"
_THINKING, _END_THINKING = "<|START_THINKING|>", "<|END_THINKING|>"


def _tools(tools: Sequence[Mapping[str, Any]] | None) -> str:
    """The "Available Tools" section, in the template's blanks."""
    entries = []
    for data in tools or ():
        fn = Tool.from_json(data).function
        entries.append(
            f'\n    {{"name": {gojson.dumps(fn.name)}, "description": '
            f"{gojson.dumps(fn.description)}, "
            f'"parameters": {marshal_with_spaces(fn.parameters.go_json())}, "responses": null}}'
        )
    body = ",\n\n".join(entries) + "\n\n" if entries else "\n\n"
    return "# Available Tools\n```json\n[\n" + body + "\n]\n```"


def _result(call_id: str, content: str) -> str:
    wrapped = marshal_with_spaces({"content": content})
    return (f'\n    {{\n        "tool_call_id": "{call_id}",\n        "results": {{\n\n'
            f'            \n            "0": {wrapped}\n\n        }},\n        "is_error": null'
            "\n    }")  # fmt: skip


class CohereRenderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        reasoning = think is None or thinks(think)  # the template reasons unless told not to
        system, rest = "", list(messages)
        if rest and rest[0].role == "system":
            system, rest = rest[0].content, rest[1:]
        out = [_TURN + _SYSTEM + _TEXT]
        if system:
            out.append(system + "\n\n\n\n")
        out.append(_tools(tools) + _END_TEXT + _END)
        # Calls are numbered across the conversation; a result names its call's number (or,
        # its call unknown, the id it gives).
        numbers: dict[str, str] = {}
        count = 0
        prefill = False
        i = 0
        while i < len(rest):
            msg = rest[i]
            if msg.role == "system":
                out.append(_TURN + _SYSTEM + _TEXT + msg.content + _END_TEXT + _END)
            elif msg.role == "user":
                out.append(_TURN + _USER + _TEXT + msg.content + _END_TEXT + _END)
            elif msg.role in ("assistant", "chatbot"):
                out.append(_TURN + _CHATBOT)
                thinking = _THINKING + msg.thinking + _END_THINKING if msg.thinking else ""
                if msg.tool_calls:
                    out.append("\n            \n                " + thinking + "<|START_ACTION|>[")
                    entries = []
                    for call in msg.tool_calls:
                        number = str(count)
                        count += 1
                        if call.id:
                            numbers.setdefault(call.id, number)
                        entries.append(
                            f'\n\n    {{"tool_call_id": "{number}", "tool_name": '
                            f'"{call.function.name}", "parameters": '
                            f"{marshal_with_spaces(call_arguments(call))}}}"
                        )
                    out.append(",".join(entries) + "\n\n]<|END_ACTION|>" + _END)
                else:
                    out.append(thinking + _TEXT + msg.content)
                    if i == len(rest) - 1:
                        prefill = True  # left open: the model continues it
                    else:
                        out.append(_END_TEXT + _END)
            elif msg.role == "tool":
                # A run of results is one turn.
                results = []
                while True:
                    call_id = numbers.get(rest[i].tool_call_id, rest[i].tool_call_id)
                    results.append(_result(call_id, rest[i].content))
                    if i + 1 < len(rest) and rest[i + 1].role == "tool":
                        i += 1
                    else:
                        break
                out.append(_TURN + _SYSTEM + "<|START_TOOL_RESULT|>[" + ",".join(results)
                           + "\n\n]<|END_TOOL_RESULT|>" + _END)  # fmt: skip
            i += 1
        if not prefill:
            out.append(_TURN + _CHATBOT + _THINKING + ("" if reasoning else _END_THINKING))
        return "".join(out)
