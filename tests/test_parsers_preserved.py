"""The control tokens each built-in parser has the runner write as text (Ollama's
`PreservedTokens` of `model/parsers/*.go` and `harmony/harmonyparser.go`, commit fb30760), and
what a template's tool-call tag preserves (`llm/llama_server_test.go`,
TestLlamaServerPreservedTokens). The runner's side is tests/test_runner.py's
test_preserved_control_tokens_are_written_as_text."""

from __future__ import annotations

import pytest

from trio_ollama.parsers import builtin_parser
from trio_ollama.parsers.builtin import _PARSERS
from trio_ollama.parsers.tools import preserved_for_tag

DEEPSEEK = ["</think>", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>",
            "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>",
            "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"]  # fmt: skip
QWEN3 = ["<think>", "</think>", "<tool_call>", "</tool_call>"]
GLM = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
       "<arg_value>", "</arg_value>"]  # fmt: skip
LAGUNA = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<user>", "</user>", "<arg_key>",
          "</arg_key>", "<arg_value>", "</arg_value>"]  # fmt: skip
GEMMA4 = ["<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool_response>", '<|"|>']
LFM2 = ["<think>", "</think>", "<|tool_call_start|>", "<|tool_call_end|>"]

OLLAMAS = {
    "harmony": ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>"],
    "qwen3": QWEN3,
    "qwen3-thinking": QWEN3,
    "qwen3-coder": ["<tool_call>", "</tool_call>"],
    "cogito": [*DEEPSEEK, "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"],
    "cohere": ["<|START_THINKING|>", "<|END_THINKING|>", "<|START_TEXT|>", "<|END_TEXT|>",
               "<|START_ACTION|>", "<|END_ACTION|>", "<|START_RESPONSE|>", "<|END_RESPONSE|>"],
    "deepseek3": DEEPSEEK,
    "functiongemma": ["<start_function_call>", "<end_function_call>"],
    "glm-4.7": GLM,
    "glm-ocr": GLM,
    "laguna": LAGUNA,
    "poolside-v1": LAGUNA,
    "lfm2": LFM2,
    "lfm2-thinking": LFM2,
    "ministral": ["[TOOL_CALLS]", "[THINK]", "[/THINK]", "[ARGS]"],
    "nemotron-3-nano": QWEN3,
    "nemotron-3.5-nano": QWEN3,
    "olmo3": ["<function_calls>", "</function_calls>"],
    "olmo3-think": ["</think>"],
    "qwen3-vl-instruct": ["</think>", "<tool_call>", "</tool_call>"],
    "qwen3-vl-thinking": ["</think>", "<tool_call>", "</tool_call>"],
    "qwen3.5": QWEN3,
    "ornith": QWEN3,
    "gemma4": GEMMA4,
    "gemma4-no-thinking": GEMMA4,
    "glimmer": ["<|start|>", "<|message|>", "<|eom|>", "<|eot|>"],
}  # fmt: skip


def test_every_builtin_parser_is_listed() -> None:
    assert sorted(OLLAMAS) == sorted(_PARSERS)


@pytest.mark.parametrize("name", sorted(OLLAMAS))
def test_a_parser_preserves_the_tags_ollamas_does(name: str) -> None:
    parser = builtin_parser(name)
    assert parser is not None
    assert list(parser.preserved_tokens) == OLLAMAS[name]


def test_harmony_lets_the_call_terminator_end_the_run() -> None:
    """`<|call|>` is an end-of-generation token: preserved, it would be text, not a stop."""
    parser = builtin_parser("harmony")
    assert parser is not None and "<|call|>" not in parser.preserved_tokens


@pytest.mark.parametrize(
    ("tag", "want"),
    [
        ("[TOOL_CALLS][", ("[TOOL_CALLS]",)),  # the special token, not JSON's bracket
        ("[", ()),  # a JSON array's bracket is no token to preserve
        ("{", ()),
        ("", ()),
        ("tool_call:", ("tool_call:",)),  # an ordinary tag, whole
        ("<tool_call>", ("<tool_call>",)),
        ("<|python_tag|>{", ("<|python_tag|>",)),
        ("<unclosed", ("<unclosed",)),
    ],
)
def test_a_tool_tag_preserves_its_leading_special_token(tag: str, want: tuple[str, ...]) -> None:
    assert preserved_for_tag(tag) == want
