"""DeepSeek V3.1's prompt, as Ollama's built-in `deepseek3.1` renderer writes it: the system
messages joined at the top, tools described in Markdown with JSON parameters, and each turn's
thinking opened (`<think>`) or closed (`</think>`) after `<｜Assistant｜>`."""

from __future__ import annotations

from collections.abc import Sequence

from trio_ollama.gocompat import gojson
from trio_ollama.renderers.cogito import BOS, EOS
from trio_ollama.renderers.common import Tools
from trio_ollama.templates import Message, Think, thinks
from trio_ollama.templates.chat import Tool

__all__ = ["DeepSeek3Renderer"]

_TOOL_FORMAT = (
    "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments"
    "<｜tool▁call▁end｜>{{additional_tool_calls}}<｜tool▁calls▁end｜>\n\n"
    "Where:\n\n"
    "- `tool_call_name` must be an exact match to one of the available tools\n"
    "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters"
    " Schema\n"
    "- For multiple tool calls, chain them directly without separators or spaces\n"
)


class DeepSeek3Renderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        thinking = thinks(think)
        out = [BOS, "\n\n".join(m.content for m in messages if m.role == "system")]
        if tools:
            out.append("\n\n## Tools\nYou have access to the following tools:\n")
            for data in tools:
                fn = Tool.from_json(data).function
                out.append(f"\n### {fn.name}\nDescription: {fn.description}")
                out.append("\n\nParameters: " + gojson.dumps(fn.parameters.go_json()) + "\n")
            out.append(_TOOL_FORMAT)
        is_tool = last_user = False
        last_user_at = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        for i, msg in enumerate(messages):
            if msg.role == "user":
                is_tool, last_user = False, True
                out.append("<｜User｜>" + msg.content)
            elif msg.role == "assistant" and msg.tool_calls:
                if last_user:
                    out.append("<｜Assistant｜></think>")
                is_tool = last_user = False
                out.append(msg.content + "<｜tool▁calls▁begin｜>")
                for call in msg.tool_calls:
                    args = call.function.arguments.go_string()
                    out.append(f"<｜tool▁call▁begin｜>{call.function.name}<｜tool▁sep｜>{args}")
                    out.append("<｜tool▁call▁end｜>")
                out.append("<｜tool▁calls▁end｜>" + EOS)
            elif msg.role == "assistant":
                if last_user:
                    # Only the turn after the last user message shows its thinking opened.
                    current = msg.thinking and thinking and i > last_user_at
                    out.append("<｜Assistant｜>" + ("<think>" if current else "</think>"))
                last_user = False
                content = msg.content
                if is_tool:
                    is_tool = False
                elif "</think>" in content:
                    content = content.partition("</think>")[2]
                out.append(content + EOS)
            elif msg.role == "tool":
                last_user, is_tool = False, True
                out.append("<｜tool▁output▁begin｜>" + msg.content + "<｜tool▁output▁end｜>")
        if last_user and not is_tool:
            out.append("<｜Assistant｜>" + ("<think>" if thinking else "</think>"))
        return "".join(out)
