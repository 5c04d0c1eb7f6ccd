"""Ollama's `cohere` parser: Ollama's own cases (its `cohere_test.go`, each test's pieces and
expected answer), the same answer in any pieces, and hostile output read in linear time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.parser_cases import call, call_json, feed, message, same_in_any_pieces, survives_hostile
from trio_ollama.parsers import builtin_parser
from trio_ollama.parsers.cohere import CohereParser


@dataclass(frozen=True)
class Case:
    name: str
    chunks: list[str]
    content: str = ""
    thinking: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    think: bool | None = None
    last: dict[str, Any] | None = None


ACTION = "<|START_ACTION|>"
# Ollama's cohere_test.go, test by test.
CASES = [
    Case("ParseThinkingThenText", ["Let me think", " about this.<|END_THINKING|>",
                                   "<|START_TEXT|>Hello", " world!<|END_TEXT|>"],
         content="Hello world!", thinking="Let me think about this."),
    Case("ParseSplitTags", ["think<|END_TH", "INKING|><|STAR", "T_TEXT|>ans", "wer<|END_",
                            "TEXT|>"],
         content="answer", thinking="think"),
    Case("ParseToolCall", [f"plan<|END_THINKING|>{ACTION}[\n",
                           '    {"tool_call_id": "0", "tool_name": "get_weather", '
                           '"parameters": {"city": "Paris"}},',
                           '    {"tool_call_id": "1", "tool_name": "get_time", "parameters": {}}',
                           "\n]<|END_ACTION|>"],
         thinking="plan", calls=[call("get_weather", city="Paris"), call("get_time", 1)]),
    Case("ParseReasoningOff", ["<|START_TEXT|>direct answer<|END_TEXT|>"],
         content="direct answer", think=False),
    Case("ParseBareContent", ["thought<|END_THINKING|>", "Just plain text", " output"],
         content="Just plain text output", thinking="thought"),
    Case("ParseEndOfTurnWithoutEndText",
         ["t<|END_THINKING|><|START_TEXT|>answer<|END_OF_TURN_TOKEN|>"],
         content="answer", thinking="t"),
    Case("ParsePrefillContinuation", [" continued<|END_TEXT|>"], content=" continued",
         last={"role": "assistant", "content": "partial"}),
    Case("ParseMalformedActions/unquoted value",
         [f"plan<|END_THINKING|>{ACTION}[\n",
          '    {"tool_call_id": "0", "tool_name": "set_alarm", "parameters": {"time": 15:30}},',
          '    {"tool_call_id": "1", "tool_name": "get_weather", "parameters": {"city": "Oslo"}}',
          "\n]<|END_ACTION|>"],
         thinking="plan", calls=[call("get_weather", city="Oslo")]),
    Case("ParseMalformedActions/missing comma",
         [f"<|END_THINKING|>{ACTION}[", '{"tool_call_id": "0", "tool_name": "a", "parameters": {}}',
          '{"tool_call_id": "1", "tool_name": "b", "parameters": {"x": "{not json}"}}',
          "]<|END_ACTION|>"],
         calls=[call("a"), call("b", 1, x="{not json}")]),
    Case("ParseMalformedActions/garbage", [f"x<|END_THINKING|>{ACTION}[!!!]<|END_ACTION|>"],
         thinking="x"),
    Case("ParseLegacyResponseMarkers", ["plan<|END_THINKING|>", "<|START_RESPONSE|>Hello",
                                        " there<|END_RESPONSE|>"],
         content="Hello there", thinking="plan"),
    Case("ParseEndOfTurnBetweenBlocks",
         ["t<|END_THINKING|><|START_TEXT|>hi<|END_TEXT|><|END_OF_TURN_TOKEN|>"],
         content="hi", thinking="t"),
    Case("ParseBareContentBeforeEndOfTurn", ["t<|END_THINKING|>plain answer<|END_OF_TURN_TOKEN|>"],
         content="plain answer", thinking="t"),
]  # fmt: skip


def make(case: Case) -> CohereParser:
    parser = builtin_parser("cohere")
    assert isinstance(parser, CohereParser)
    parser.init([], case.think, last_message=message(case.last))
    return parser


def test_registered_under_ollamas_name() -> None:
    parser = builtin_parser("cohere")
    assert isinstance(parser, CohereParser)
    assert parser.has_tool_support and parser.has_thinking_support


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ollama_cases(case: Case) -> None:
    assert feed(make(case), case.chunks) == (case.content, case.thinking, case.calls)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_in_any_pieces(case: Case) -> None:
    same_in_any_pieces(lambda: make(case), "".join(case.chunks), "cohere" + case.name)


@pytest.mark.parametrize(
    ("piece", "streamed"),
    [
        ("<|START_RESPONSE|>The answer is 42.", "The answer is 42."),
        ("<|TOOL_PLAN|>I should call the tool.", "<|TOOL_PLAN|>I should call the tool."),
        ("Just plain text.", "Just plain text."),
    ],
    ids=["legacy response marker", "unrecognized tag", "bare content"],
)
def test_ollama_streams_before_done(piece: str, streamed: str) -> None:
    """Ollama's `TestCohereParseStreamsBeforeDone`: text after the thinking streams as it
    comes, whatever opens it."""
    parser = make(Case("", []))
    assert parser.add("x<|END_THINKING|>", False) == ("", "x", [])
    assert parser.add(piece, False) == (streamed, "", [])


def test_text_streams_and_calls_go_out_whole() -> None:
    parser = make(Case("", []))
    assert parser.add("Plan  ", False) == ("", "Plan", [])
    assert parser.add("it.<|END_THINKING|><|START_TEXT|>Let me <|END", False) == (
        "Let me ", "  it.", [])  # fmt: skip
    assert parser.add("_TE", False) == ("", "", [])
    assert parser.add("check.<|END_TEXT|>", False) == ("<|END_TEcheck.", "", [])
    assert parser.add('<|START_ACTION|>[{"tool_name": "f", "parameters": {"a": 1}}', False) == (
        "", "", [])  # fmt: skip
    _, _, calls = parser.add("]<|END_ACTION|>", True)
    assert [call_json(c) for c in calls] == [call("f", a=1)]


# Where Ollama's answer depends on the cut (or on nothing Ollama's tests cover).
OWN = [
    # A block opens only at the start of what follows the last one; text is answer.
    Case("text then opener", ["t<|END_THINKING|>abc<|START_TEXT|>def<|END_TEXT|>"],
         content="abc<|START_TEXT|>def", thinking="t"),
    # Text ends at the first of its closing tags.
    Case("first close counts", ["<|START_TEXT|>a<|END_OF_TURN_TOKEN|>b<|END_TEXT|>"],
         content="ab", think=False),
    # Blanks around the thinking's end go; the answer's stay.
    Case("blanks", ["  deep \n <|END_THINKING|> \n <|START_TEXT|> hi \n<|END_TEXT|>"],
         content=" hi \n", thinking="  deep"),
    # An action left open at the end is read as far as it goes; a lone object is a call.
    Case("open action", ['t<|END_THINKING|><|START_ACTION|>{"tool_name": "f", "parameters": {}}'],
         thinking="t", calls=[call("f")]),
    Case("null in the array", ["<|START_ACTION|>[null]<|END_ACTION|>"], calls=[call("")],
         think=False),
    # A field of the wrong type drops its call, not the others; names match in any case.
    Case("wrong type", ['<|START_ACTION|>[{"tool_name": 1}, {"TOOL_NAME": "g", "Parameters": '
                        '{"b": [1]}}]<|END_ACTION|>'],
         calls=[call("g", b=[1])], think=False),
    # A tag cut short at the end is answer.
    Case("partial opener at the end", ["t<|END_THINKING|> <|START_TE"], content="<|START_TE",
         thinking="t"),
    # Ollama continues a prefill only when the assistant wrote text.
    Case("empty prefill", ["a<|END_THINKING|>b"], content="b", thinking="a",
         last={"role": "assistant", "content": ""}),
]  # fmt: skip


@pytest.mark.parametrize("case", OWN, ids=[c.name for c in OWN])
def test_split_dependent_answers_read_one_way(case: Case) -> None:
    assert feed(make(case), case.chunks) == (case.content, case.thinking, case.calls)
    same_in_any_pieces(lambda: make(case), "".join(case.chunks), "cohere-own" + case.name)


MB = 1 << 20
OWN_HOSTILE = {
    "objects": "<|START_ACTION|>[" + '{"tool_name": "f", "parameters": {}}' * (MB // 36),
    "broken_objects": "<|START_ACTION|>[" + '{"tool_name": f}' * (MB // 16),
    "open_string": '<|START_ACTION|>[{"tool_name": "' + "\\" * MB,
    "deep": "<|START_ACTION|>[" + "{" * MB,
    "openers": "<|START_TEXT|><|END_TEXT|>" * (MB // 26),
}


@pytest.mark.parametrize("name", sorted(OWN_HOSTILE))
def test_cohere_hostile_output_in_linear_time(name: str, caplog: pytest.LogCaptureFixture) -> None:
    """What breaks this family's parser in particular: an action block of many calls, or of
    broken ones, a string never closed, objects never closed."""
    caplog.set_level("ERROR")  # a broken call is logged; a million of them need not be shown
    survives_hostile(lambda: make(Case("", [], think=False)), outputs={name: OWN_HOSTILE[name]})


# A megabyte of each hostile output, its eighth three times: seconds of CPU.
@pytest.mark.slow
def test_hostile_output_in_linear_time() -> None:
    for think in (None, False):
        survives_hostile(lambda: make(Case("", [], think=think)))  # noqa: B023
