"""JSON as several of Ollama's renderers write it (its `marshalWithSpaces`): Go's compact JSON
with a blank after each `:` and `,` outside strings, and a call's arguments in the order the
call gives them (Ollama's arguments are an ordered map since v0.13)."""

from __future__ import annotations

import re
from typing import Any

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.template.values import go_json_value
from trio_ollama.templates.chat import ToolCall

__all__ = ["call_arguments", "marshal_with_spaces", "spaced"]

_STRING_OR_SEPARATOR = re.compile(r'"(?:[^"\\]|\\.)*"|[:,]')


def spaced(text: str) -> str:
    """Go's compact JSON `text` with a blank after each `:` and `,` outside strings."""
    return _STRING_OR_SEPARATOR.sub(lambda m: m.group() if len(m.group()) > 1 else m.group() + " ",
                                    text)  # fmt: skip


def marshal_with_spaces(value: Any) -> str:
    """`value` (JSON-ready, in Go's field order) as `marshalWithSpaces` writes it."""
    return spaced(gojson.dumps(value))


def call_arguments(call: ToolCall) -> dict[str, Any]:
    """A call's arguments, JSON-ready: in the call's order, maps within them sorted as Go's
    `map[string]any` marshals them."""
    return {key: go_json_value(value) for key, value in call.function.arguments.items()}
