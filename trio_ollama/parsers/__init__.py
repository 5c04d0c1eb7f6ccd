"""Reading what a model wrote: tool calls and thinking, parsed once below the API layers.

`OutputParser` (in `output.py`) is what the chat and generate paths use; `tools.py` and
`thinking.py` are Ollama's template-driven parsers (its `tools/` and `thinking/` packages).
"""

from trio_ollama.parsers.builtin import (
    BuiltinParser,
    ParseError,
    Prefills,
    RenamesTools,
    builtin_parser,
)
from trio_ollama.parsers.output import OutputParser, Parsed, new_tool_call_id
from trio_ollama.parsers.thinking import ThinkingParser, infer_thinking_tags
from trio_ollama.parsers.tools import ToolCallParser, tool_call_tag

__all__ = [
    "BuiltinParser",
    "OutputParser",
    "ParseError",
    "Parsed",
    "Prefills",
    "RenamesTools",
    "ThinkingParser",
    "ToolCallParser",
    "builtin_parser",
    "infer_thinking_tags",
    "new_tool_call_id",
    "tool_call_tag",
]
