"""GLM-OCR's prompt, as Ollama's built-in `glm-ocr` renderer writes it: GLM-4.7's tags with a
line break after each role, images marked `[img-N]` in the text (as Ollama's server asks its
renderers to), and `/nothink` where the request turns thinking off."""

from __future__ import annotations

from collections.abc import Sequence

from trio_ollama.renderers.common import Tools
from trio_ollama.renderers.glm47 import tool_arguments, tools_section
from trio_ollama.templates import Message, Think, thinks

__all__ = ["GlmOcrRenderer", "with_image_tags"]


def with_image_tags(content: str, images: int, offset: int) -> tuple[str, int]:
    """Ollama's image tags: each `[img]` in the text becomes `[img-N]` (numbered through the
    conversation), and images it does not mark go first; text that numbers its own (`[img-`)
    is left alone. Returns the text and the next number."""
    if not images:
        return content, offset
    if "[img-" in content:
        return content, offset + images
    prefix = ""
    for n in range(offset, offset + images):
        if "[img]" in content:
            content = content.replace("[img]", f"[img-{n}]", 1)
        else:
            prefix += f"[img-{n}]"
    if prefix and content and not content[0].isspace():
        prefix += " "
    return prefix + content, offset + images


class GlmOcrRenderer:
    def render(self, messages: Sequence[Message], tools: Tools, think: Think) -> str:
        out = ["[gMASK]<sop>", tools_section(tools)]
        nothink = think is not None and not thinks(think)
        images = 0
        for i, msg in enumerate(messages):
            if msg.role == "user":
                content, images = with_image_tags(msg.content, len(msg.images), images)
                out.append("<|user|>\n" + content)
                if nothink and not msg.content.endswith("/nothink"):
                    out.append("/nothink")
            elif msg.role == "assistant":
                out.append("<|assistant|>\n")
                out.append(f"<think>{msg.thinking.strip()}</think>")
                if msg.content:
                    out.append("\n" + msg.content.strip())
                for call in msg.tool_calls:
                    name = call.function.name
                    out.append(f"\n<tool_call>{name}{tool_arguments(call)}</tool_call>")
                out.append("\n")
            elif msg.role == "tool":
                if i == 0 or messages[i - 1].role != "tool":
                    out.append("<|observation|>")
                content, images = with_image_tags(msg.content, len(msg.images), images)
                out.append(f"\n<tool_response>\n{content}\n</tool_response>\n")
            elif msg.role == "system":
                out.append(f"<|system|>\n{msg.content}\n")
        out.append("<|assistant|>\n" + ("<think></think>\n" if nothink else ""))
        return "".join(out)
