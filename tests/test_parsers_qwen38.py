"""Qwen 3.8's output (issue 31): Ollama reads it with its `qwen3.5` parser (Ollama's create
names `qwen3.5` as the PARSER of a Qwen 3.8 model and `qwen3.8` only as its RENDERER); the
cases of Ollama's qwen38_test.go, at every cut, a character a piece and 300 random cuts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.parser_cases import feed, same_in_any_pieces
from trio_ollama.parsers import builtin_parser

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": {key: {"type": kind}}}}}
    for name, key, kind in (("get_weather", "city", "string"),
                            ("set_uv_threshold", "index", "integer"))]  # fmt: skip
CONTINUATION = """<think>
Need weather and UV for Montréal.
</think>

I'll check both.

<tool_call>
<function=get_weather>
<parameter=city>
Montréal
</parameter>
</function>
</tool_call>
<tool_call>
<function=set_uv_threshold>
<parameter=index>
5
</parameter>
</function>
</tool_call>"""
EXPECTED = ("I'll check both.", "Need weather and UV for Montréal.",
            [{"name": "get_weather", "arguments": {"city": "Montréal"}, "index": 0},
             {"name": "set_uv_threshold", "arguments": {"index": 5}, "index": 1}])  # fmt: skip


def make(tools: Any = TOOLS) -> Any:
    parser = builtin_parser("qwen3.5")
    assert parser is not None
    parser.init(tools, True)
    return parser


def test_reference_continuation_at_every_cut() -> None:
    for at in range(len(CONTINUATION) + 1):
        assert feed(make(), [CONTINUATION[:at], CONTINUATION[at:]]) == EXPECTED, at
    assert feed(make(), list(CONTINUATION)) == EXPECTED
    same_in_any_pieces(make, CONTINUATION, seed="qwen3.8")


@pytest.mark.parametrize(
    ("output", "content", "thinking"),
    [("Plan</think>ordinary <tool_calling> marker.", "ordinary <tool_calling> marker.", "Plan"),
     ("Plan</think>Before<tool_call><function=get_weather>", "Before", "Plan")],
    ids=["ordinary control-like text", "truncated tool call"],
)  # fmt: skip
def test_malformed_and_control_like_content(output: str, content: str, thinking: str) -> None:
    assert feed(make([]), [output]) == (content, thinking, [])
    same_in_any_pieces(lambda: make([]), output, seed=output)


def test_ollama_has_no_parser_by_that_name() -> None:
    assert builtin_parser("qwen3.8") is None
