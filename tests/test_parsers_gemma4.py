"""Ollama's `gemma4` and `gemma4-no-thinking` parsers (issue 31): the cases of Ollama's
`model/parsers/gemma4_test.go` (tests/data/ollama-cases/parsers_gemma4.json) as inputs and the
content, thinking and calls it returns, its argument conversion and repairs; each output cut
into pieces at random gives what the whole gives; hostile output costs its length."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.parser_cases import cases, feed, ids, message, same_in_any_pieces, survives_hostile
from trio_ollama.parsers import builtin_parser
from trio_ollama.parsers.gemma4 import (
    Gemma4Parser,
    args_to_json,
    close_object,
    close_string,
    parse_call,
    raw_string_value,
    repair_candidates,
    single_quoted_values,
)

FILE = "parsers_gemma4"
PARSER = cases(FILE, "TestGemma4Parser")


def _calls(data: Any) -> list[dict[str, Any]]:
    # Ollama's tables leave the index at zero where a case has one call; indexes count up.
    return [{"name": c["function"]["name"], "arguments": c["function"].get("arguments") or {},
             "index": i} for i, c in enumerate(data or ())]  # fmt: skip


def _parser(case: dict[str, Any], *, thinking: bool = True, tools: Any = ()) -> Gemma4Parser:
    parser = Gemma4Parser(thinking=thinking)
    parser.init(tools, case.get("thinkingEnabled", False))
    if (last := message(case.get("lastMessage"))) is not None:
        parser.prefill(last)
    return parser


@pytest.mark.parametrize("case", PARSER, ids=ids(PARSER))
def test_ollama_cases(case: dict[str, Any]) -> None:
    content, thinking, calls = feed(_parser(case), [case["input"]])
    assert content == case.get("expectedContent", "")
    assert thinking == case.get("expectedThinking", "")
    assert calls == _calls(case.get("expectedToolCalls"))


@pytest.mark.parametrize("case", PARSER, ids=ids(PARSER))
def test_any_pieces(case: dict[str, Any]) -> None:
    same_in_any_pieces(lambda: _parser(case), case["input"], case["name"])


CHUNKED = [
    (test, case)
    for test in (
        "TestGemma4Parser_IgnoresExtraToolCallCloseTags",
        "TestGemma4Parser_IgnoresToolResponseBoundaryAfterToolCall",
        "TestGemma4Parser_StreamingSplitThinkingTag",
    )
    for case in cases(FILE, test)
]


@pytest.mark.parametrize(("test", "case"), CHUNKED, ids=[f"{t}-{c['name']}" for t, c in CHUNKED])
def test_ollama_chunked_cases(test: str, case: dict[str, Any]) -> None:
    thinks = test.endswith("SplitThinkingTag")
    parser = Gemma4Parser(thinking=thinks)
    parser.init((), thinks or None)
    content, thinking, calls = feed(parser, case["chunks"])
    assert content == case["expectedContent"]
    assert thinking == case.get("expectedThinking", "")
    if not thinks:
        location = {"location": "Paris"}
        assert calls == [{"name": "get_weather", "arguments": location, "index": 0}]


def test_streaming_thinking_then_answer() -> None:
    parser = Gemma4Parser(thinking=True)
    parser.init((), True)
    pieces = ["<|channel>thought", "\nLet me think", "...<channel|>The answer", " is 42."]
    assert feed(parser, pieces)[:2] == ("The answer is 42.", "Let me think...")


def test_streaming_call_goes_out_whole() -> None:
    parser = Gemma4Parser(thinking=False)
    parser.init((), None)
    out = [
        parser.add(p, False)
        for p in [
            "Sure. <|tool_call>call:get_",
            'weather{location:<|"|>Par',
            'is<|"|>}<tool_call|>',
        ]
    ]
    assert out[0] == ("Sure.", "", [])
    assert out[1] == ("", "", [])
    assert [c.function.arguments for c in out[2][2]] == [{"location": "Paris"}]


def test_after_a_tool_answer_the_output_starts_thinking() -> None:
    parser = builtin_parser("gemma4")
    assert isinstance(parser, Gemma4Parser)
    parser.init((), True)
    last = message({"role": "tool", "content": "go.mod\ngo.sum\n"})
    assert last is not None
    parser.prefill(last)
    content, thinking, calls = feed(
        parser, ["The user asked for files.<channel|>go.mod and go.sum"]
    )
    assert (content, thinking, calls) == ("go.mod and go.sum", "The user asked for files.", [])


def test_no_thinking_variant_drops_the_channel() -> None:
    parser = builtin_parser("gemma4-no-thinking")
    assert parser is not None and not parser.has_thinking_support
    parser.init((), True)
    assert feed(parser, ["<|channel>thought\nhmm<channel|>Hi"]) == ("Hi", "", [])


@pytest.mark.parametrize("case", cases(FILE, "TestGemma4ArgsToJSON"),
                         ids=ids(cases(FILE, "TestGemma4ArgsToJSON")))  # fmt: skip
def test_args_to_json(case: dict[str, Any]) -> None:
    # Go's json.Marshal escapes <, > and & where Python does not: compare what the JSON says.
    got = args_to_json(case["input"])
    assert json.loads(got) == json.loads(case["expected"])
    if "<" not in case["input"] and ">" not in case["input"]:
        assert got == case["expected"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{é_1:1,b:2}", '{"é_1":1,"b":2}'),  # Go's letters and digits, any script
        ("{x²:1}", "{x²:1}"),  # a superscript is a number to Python, no digit to Go
        ("{ a :1}", "{ a :1}"),  # the colon must follow the key at once
        ('{"k,x:":1,y:2}', '{"k,x:":1,"y":2}'),  # no key inside a JSON string
        ('{a:"open,b:1', '{"a":"open,"b":1'),  # after a quote that never closes, plain text
        ("{,a:1}", '{,"a":1}'),
    ],
)
def test_bare_keys_are_what_go_reads_as_keys(text: str, expected: str) -> None:
    assert args_to_json(text) == expected


@pytest.mark.parametrize(
    ("test", "repair"),
    [("TestRepairGemma4MissingStringDelimiter", close_string),
     ("TestRepairGemma4MissingObjectClose", close_object),
     ("TestRepairGemma4SingleQuotedValues", single_quoted_values)],
)  # fmt: skip
def test_repairs(test: str, repair: Any) -> None:
    for case in cases(FILE, test):
        assert repair(case["input"]) == case["expected"], case["name"]


def test_raw_terminal_string_value() -> None:
    for case in cases(FILE, "TestRepairGemma4RawTerminalStringValue"):
        got = raw_string_value(case["input"], case["toolName"], case.get("tools") or ())
        assert (got is not None) == case["expectedOK"], case["name"]
        if case["expectedOK"]:
            assert got == case["expected"], case["name"]


def test_repair_candidates() -> None:
    for case in cases(FILE, "TestGemma4RepairCandidates"):
        got = repair_candidates(case["input"], case["toolName"], case["tools"])
        assert got == case["expected"], case["name"]


def test_repairs_several_properties() -> None:
    for case in cases(FILE, "TestParseGemma4ToolCall_RepairsMultipleProperties"):
        name, args = parse_call(case["content"], case["tools"])
        assert (name, args) == (case["want"]["function"]["name"],
                                case["want"]["function"]["arguments"]), case["name"]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Ollama's TestParseGemma4ToolCall_* cases.
        ('call:f{a:<|"|>1<|"|>,b:<|"|>true<|"|>}', ("f", {"a": "1", "b": "true"})),
        ("call:f{a:1,b:true,c:null,d:-2.5}", ("f", {"a": 1, "b": True, "c": None, "d": -2.5})),
        ('call:f{q:"a,b:{c}"}', ("f", {"q": "a,b:{c}"})),
    ],
)
def test_parse_call(raw: str, expected: tuple[str, dict[str, Any]]) -> None:
    assert parse_call(raw, ()) == expected


def test_unreadable_call_is_dropped_not_an_error() -> None:
    parser = Gemma4Parser(thinking=False)
    parser.init((), None)
    assert feed(parser, ['<|tool_call>call:f{a:"\\q"}<tool_call|>Done.']) == ("Done.", "", [])
    parser.init((), None)
    assert feed(parser, ["<|tool_call>nocall<tool_call|>"]) == ("", "", [])


MB = 1 << 20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma4", "gemma4-no-thinking"])
def test_hostile_output(name: str) -> None:
    def make() -> Any:
        parser = builtin_parser(name)
        assert parser is not None
        parser.init([{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": {"type": "string"}}}}}], True)  # fmt: skip
        return parser

    survives_hostile(make)
    own = {
        "unclosed_channel": "<|channel>thought\n" + "a " * (MB // 2),
        "nested_channels": "<|channel><|channel><|tool_call>" * (MB // 32),
        "huge_call": '<|tool_call>call:f{x:<|"|>' + "y" * MB + '<|"|>}<tool_call|>',
        "unclosed_call": "<|tool_call>call:f{x:" + "y" * MB,
        "escaped_quotes": '<|tool_call>call:f{x:"' + '\\"' * (MB // 2),
        "single_quotes": "<|tool_call>call:f{" + "x:'\\'," * (MB // 6),
        "many_strings": "<|tool_call>call:f{x:[" + '<|"|>a<|"|>,' * (MB // 11) + "]}",
        "half_tags": "<|chan <tool_ca <|tool_respo " * (MB // 28),
    }
    survives_hostile(make, outputs=own)
