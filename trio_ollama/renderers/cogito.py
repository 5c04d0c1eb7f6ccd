"""Cogito's prompt, as Ollama's built-in `cogito` renderer writes it: DeepSeek's turn tags, a
fixed system prompt (with "Enable deep thinking subroutine." when the request thinks), tools
as indented JSON in fences, and calls as `function<｜tool▁sep｜>NAME` with fenced arguments."""

from __future__ import annotations

from collections.abc import Sequence

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.common import Tools
from trio_ollama.templates import Message, Think, thinks
from trio_ollama.templates.chat import Tool

__all__ = ["CogitoRenderer"]

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
_DEFAULT_SYSTEM = (
    "You are Cogito, an AI assistant created by Deep Cogito, which is an AI research lab "
    "based in San Francisco."
)


class CogitoRenderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        thinking = thinks(think)
        system, rest = "", list(messages)
        if rest and rest[0].role == "system":
            system, rest = rest[0].content, rest[1:]
        if thinking:
            prompt = "Enable deep thinking subroutine.\n\n" + _DEFAULT_SYSTEM
            if system:
                prompt += "\n\n" + system + "\n\n"
        else:
            prompt = _DEFAULT_SYSTEM + ("\n\n" + system if system else "")
        if tools:
            prompt += "\nYou have the following functions available:\n"
            for tool in tools:
                text = gojson.dumps(Tool.from_json(tool).go_json(), indent=4)
                prompt += "```json\n" + text + "\n```\n"
        out = [BOS + prompt]
        outputs_open = last_user = False
        for i, msg in enumerate(rest):
            if msg.role == "user":
                last_user = True
                out.append("<｜User｜>" + msg.content + "<｜Assistant｜>")
            elif msg.role == "assistant":
                last_user = False
                if msg.tool_calls:
                    out.append(msg.content + "<｜tool▁calls▁begin｜>")
                    calls = [
                        "<｜tool▁call▁begin｜>function<｜tool▁sep｜>" + call.function.name
                        + "\n```json\n" + call.function.arguments.go_string() + "\n```"
                        + "<｜tool▁call▁end｜>"
                        for call in msg.tool_calls
                    ]  # fmt: skip
                    out.append("\n".join(calls) + "<｜tool▁calls▁end｜>" + EOS)
                else:
                    out.append(msg.content + EOS)
            elif msg.role == "tool":
                last_user = False
                if not outputs_open:
                    out.append("<｜tool▁outputs▁begin｜>")
                    outputs_open = True
                out.append("<｜tool▁output▁begin｜>" + msg.content + "<｜tool▁output▁end｜>")
                if i + 1 < len(rest) and rest[i + 1].role == "tool":
                    out.append("\n")
                else:
                    out.append("<｜tool▁outputs▁end｜>")
                    outputs_open = False
        if outputs_open:
            out.append("<｜tool▁outputs▁end｜>")
        if not last_user:
            out.append("<｜Assistant｜>")
        if thinking:
            out.append("<think>\n")
        return "".join(out)
