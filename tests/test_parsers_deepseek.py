"""Ollama's `deepseek3` and `cogito` parsers (DeepSeek's full-width-bar tags): Ollama's own
cases, the same answer in any pieces, and hostile output read in linear time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.parser_cases import (
    call_json,
    cases,
    expected_calls,
    feed,
    ids,
    message,
    same_in_any_pieces,
    survives_hostile,
)
from trio_ollama.parsers import builtin_parser
from trio_ollama.parsers.cogito import CogitoParser
from trio_ollama.parsers.deepseek3 import DeepSeek3Parser

DS = "parsers_deepseek3"
COGITO = "parsers_cogito"


def deepseek(thinking: bool) -> DeepSeek3Parser:
    parser = DeepSeek3Parser()
    parser.init([], thinking)
    return parser


def check(got: tuple[str, str, list[dict[str, Any]]], case: dict[str, Any], calls: str) -> None:
    content, thinking, got_calls = got
    assert content == case.get("expectedContent", "")
    assert thinking == case.get("expectedThinking", "")
    if calls in case or calls == "expectedCalls":
        assert got_calls == expected_calls(case.get(calls))


def test_registered_under_ollamas_names() -> None:
    assert isinstance(builtin_parser("deepseek3"), DeepSeek3Parser)
    assert isinstance(builtin_parser("cogito"), CogitoParser)
    for name in ("deepseek3", "cogito"):
        parser = builtin_parser(name)
        assert parser is not None
        assert parser.has_tool_support and parser.has_thinking_support


# ---- DeepSeek 3 -----------------------------------------------------------------------------

DS_WHOLE = cases(DS, "TestDeepSeekParser")
DS_STREAMED = cases(DS, "TestDeepSeekParser_Streaming")
DS_EDGES = cases(DS, "TestDeepSeekParser_EdgeCases")


@pytest.mark.parametrize("case", DS_WHOLE, ids=ids(DS_WHOLE))
def test_deepseek3_ollama_cases(case: dict[str, Any]) -> None:
    check(feed(deepseek(case["hasThinking"]), [case["input"]]), case, "expectedCalls")


# Ollama's answer here depends on where the pieces fall: blanks beside a tag are dropped when
# they arrive with it and kept when they came before it. This parser reads any pieces as the
# whole (the blanks go), which is Ollama's answer for the whole text.
SPLIT_DEPENDENT = {"streaming_with_split_tags": "Content beforeafter"}
# Read whole, Ollama looks for the next call before the end of the calls, past it and the text
# after it: that text is lost, as Ollama's case says. In pieces, the end comes first.
LOOKS_AHEAD = {"consecutive_tool_calls": "Ollama's whole-text answer skips text after </calls>"}


@pytest.mark.parametrize("case", DS_STREAMED, ids=ids(DS_STREAMED))
def test_deepseek3_ollama_streaming_cases(case: dict[str, Any]) -> None:
    if case["name"] in SPLIT_DEPENDENT:
        case = {**case, "expectedContent": SPLIT_DEPENDENT[case["name"]]}
    check(feed(deepseek(case["hasThinking"]), case["chunks"]), case, "expectedCalls")


@pytest.mark.parametrize("case", DS_EDGES, ids=ids(DS_EDGES))
def test_deepseek3_ollama_edge_cases(case: dict[str, Any]) -> None:
    check(feed(deepseek(case["hasThinking"]), [case["input"]]), case, "")


CALL_CONTENT = cases(DS, "TestDeepSeek3Parser_parseToolCallContent")


@pytest.mark.parametrize("case", CALL_CONTENT, ids=ids(CALL_CONTENT))
def test_deepseek3_ollama_call_contents(case: dict[str, Any]) -> None:
    """A call's text between its tags: read, or (where Ollama errs) left unread, the answer
    going on after the calls."""
    text = ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" + case["content"]
            + "<｜tool▁call▁end｜><｜tool▁calls▁end｜>after")  # fmt: skip
    content, _, calls = feed(deepseek(False), [text])
    assert content == "after"
    if case.get("expectError"):
        assert calls == []
    else:
        assert calls == expected_calls([case["expected"]])


# Every case but those whose whole-text answer no reading in pieces can give (LOOKS_AHEAD).
DS_ALL = [c for c in DS_WHOLE + DS_STREAMED + DS_EDGES if c["name"] not in LOOKS_AHEAD]


@pytest.mark.parametrize("case", DS_ALL, ids=ids(DS_ALL))
def test_deepseek3_same_in_any_pieces(case: dict[str, Any]) -> None:
    text = case["input"] if "input" in case else "".join(case["chunks"])
    same_in_any_pieces(lambda: deepseek(case["hasThinking"]), text, "deepseek3" + case["name"])


def test_deepseek3_prefill_starts_in_the_answer() -> None:
    parser = DeepSeek3Parser()
    parser.init([], True, last_message=message({"role": "assistant", "content": "So"}))
    assert feed(parser, ["far</think>"]) == ("far</think>", "", [])


def test_deepseek3_streams_text_before_a_call_and_the_call_whole() -> None:
    parser = deepseek(False)
    assert parser.add("Checking ", False) == ("Checking", "", [])
    assert parser.add("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{", False) == (
        "", "", [])  # fmt: skip
    _, _, calls = parser.add('"a": 1}<｜tool▁call▁end｜>', False)
    assert [call_json(c) for c in calls] == [{"name": "f", "arguments": {"a": 1}, "index": 0}]


# A megabyte of each hostile output, its eighth three times: seconds of CPU.
@pytest.mark.slow
def test_deepseek3_hostile_output_in_linear_time() -> None:
    survives_hostile(lambda: deepseek(True))
    survives_hostile(lambda: deepseek(False))


# ---- Cogito ---------------------------------------------------------------------------------

COGITO_WHOLE = cases(COGITO, "TestCogitoParser")
COGITO_EDGES = cases(COGITO, "TestCogitoParser_StreamingEdgeCases")


def cogito(case: dict[str, Any], thinking: bool) -> CogitoParser:
    parser = CogitoParser()
    parser.init(case.get("tools") or [], thinking, last_message=message(case.get("lastMessage")))
    return parser


@pytest.mark.parametrize("case", COGITO_WHOLE, ids=ids(COGITO_WHOLE))
def test_cogito_ollama_cases(case: dict[str, Any]) -> None:
    # Ollama's test asks for thinking where it expects some.
    parser = cogito(case, bool(case.get("expectedThinking")))
    check(feed(parser, [case["input"]]), case, "expectedToolCalls")


def test_cogito_ollama_streaming_case() -> None:
    parser = cogito({}, True)
    got = feed(parser, cases(COGITO, "TestCogitoParser_Streaming"))
    assert got == ("This is content.", "This is thinking content.",
                   [{"name": "test_tool", "arguments": {"arg": "value"}, "index": 0}])  # fmt: skip


# Ollama takes a tag split between pieces for text (a tag is one token); this parser reads the
# pieces as it reads the whole.
COGITO_SPLIT_DEPENDENT = {
    "split_tool_calls_begin_tag_conservative_parsing": {
        "expectedContent": "Content before",
        "expectedToolCalls": [{"function": {"name": "test", "arguments": {}}}],
    }
}


@pytest.mark.parametrize("case", COGITO_EDGES, ids=ids(COGITO_EDGES))
def test_cogito_ollama_streaming_edge_cases(case: dict[str, Any]) -> None:
    case = {**case, **COGITO_SPLIT_DEPENDENT.get(case["name"], {})}
    parser = cogito(case, case["hasThinkingSupport"])
    check(feed(parser, case["chunks"]), case, "expectedToolCalls")


COGITO_CALLS = cases(COGITO, "TestCogitoParser_parseToolCallContent")


@pytest.mark.parametrize("case", COGITO_CALLS, ids=ids(COGITO_CALLS))
def test_cogito_ollama_call_contents(case: dict[str, Any]) -> None:
    text = ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" + case["content"]
            + "<｜tool▁call▁end｜><｜tool▁calls▁end｜>after")  # fmt: skip
    content, _, calls = feed(cogito({}, False), [text])
    assert content == "after"
    assert calls == ([] if case["expectError"] else expected_calls([case["expected"]]))


@pytest.mark.parametrize("case", COGITO_WHOLE + COGITO_EDGES, ids=ids(COGITO_WHOLE + COGITO_EDGES))
def test_cogito_same_in_any_pieces(case: dict[str, Any]) -> None:
    thinking = bool(case.get("expectedThinking") or case.get("hasThinkingSupport"))
    text = case["input"] if "input" in case else "".join(case["chunks"])
    same_in_any_pieces(lambda: cogito(case, thinking), text, "cogito" + case["name"])


def test_cogito_does_not_think_when_offered_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    parser = CogitoParser()
    parser.init(tools, True)
    assert feed(parser, ["a</think>b"]) == ("a</think>b", "", [])


# A megabyte of each hostile output, its eighth three times: seconds of CPU.
@pytest.mark.slow
def test_cogito_hostile_output_in_linear_time() -> None:
    survives_hostile(lambda: cogito({}, True))
    survives_hostile(lambda: cogito({}, False))
