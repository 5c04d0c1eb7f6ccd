"""Ollama's `laguna` and `poolside-v1` parsers: Ollama's own cases (its `laguna_test.go`, each
test's input and expected answer), the same answer in any pieces, and hostile output read in
linear time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.parser_cases import (
    call,
    call_json,
    feed,
    message,
    same_in_any_pieces,
    survives_hostile,
)
from trio_ollama.parsers import ParseError, builtin_parser
from trio_ollama.parsers.laguna import LagunaParser, PoolsideV1Parser


def tool(name: str, /, **props: str) -> dict[str, Any]:
    parameters = {"type": "object",
                  "properties": {key: {"type": kind} for key, kind in props.items()}}  # fmt: skip
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


WEATHER = [tool("get_weather", location="string", days="integer")]
READ = [tool("read", path="string")]
SKILL = [tool("skill", name="string")]
BASH = [tool("bash", command="string")]


@dataclass(frozen=True)
class Case:
    name: str
    chunks: list[str]
    content: str = ""
    thinking: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    think: bool | None = None
    last: dict[str, Any] | None = None
    parser: str = "laguna"


PREFILL = {"role": "assistant", "content": "prefill"}
LAGUNA_CALL = ("<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>"
               "\n</tool_call>")  # fmt: skip
READ_ARGS = "<arg_key>path</arg_key>\n<arg_value>/Users/test/code/myproject/go.mod</arg_value>\n"
GO_MOD = "/Users/test/code/myproject/go.mod"

# Ollama's laguna_test.go, test by test.
CASES = [
    Case("ToolCall", ["<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris"
                      "</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n"
                      "</tool_call>"],
         calls=[call("get_weather", location="Paris", days=3)], tools=WEATHER),
    Case("JSONToolCall", ['<tool_call>\n{"name":"get_weather","arguments":{"location":"Paris",'
                          '"days":3}}\n</tool_call>'],
         calls=[call("get_weather", location="Paris", days=3)], tools=WEATHER),
    Case("StandaloneJSONToolCall",
         ['{"name":"get_weather","arguments":{"location":"Paris","days":3}}'],
         calls=[call("get_weather", location="Paris", days=3)], tools=WEATHER),
    Case("StandaloneJSONToolCallAfterLeadingContent",
         ['Let me call the weather tool.\n{"name":"get_weather","arguments":{"location":"Paris"}}'],
         content="Let me call the weather tool.", calls=[call("get_weather", location="Paris")],
         tools=WEATHER),
    Case("StreamingStandaloneJSONToolCall",
         ['{"name":"get_weather","arguments":{"location":"San Francisco,', ' CA"}}'],
         calls=[call("get_weather", location="San Francisco, CA")], tools=WEATHER),
    Case("NameLineJSONToolCall", ['<tool_call>get_weather\n{"location":"San Francisco"}'
                                  "</tool_call>"],
         calls=[call("get_weather", location="San Francisco")], tools=WEATHER),
    Case("NormalizesCommonToolAliases",
         ['<tool_call>\n{"name":"read_file","arguments":{"path":"./go.mod"}}\n</tool_call>'],
         calls=[call("read", path="./go.mod")], tools=READ),
    Case("IgnoresDuplicatedNestedToolCall",
         ['<tool_call>skill\n{"name":"git-diff-review"}\n<tool_call>skill\n'
          '{"name":"git-diff-review"}</tool_call>'],
         calls=[call("skill", name="git-diff-review")], tools=SKILL),
    Case("ThinkingThenTool", ["<think>Need current weather.</think>\n<tool_call>get_weather\n"
                              "<arg_key>location</arg_key>\n<arg_value>SF</arg_value>\n"
                              "</tool_call>"],
         thinking="Need current weather.", calls=[call("get_weather", location="SF")],
         tools=WEATHER, think=True),
    Case("UserTaggedToolAlias", ["<user>get_weather\n<arg_key>location</arg_key>\n<arg_value>"
                                 "San Francisco, CA</arg_value>\n</user>"],
         calls=[call("get_weather", location="San Francisco, CA")], tools=WEATHER),
    Case("UserTaggedToolAliasWithLeadingContent",
         [f"I'll read the file for you.\n<user>read\n{READ_ARGS}</user>"],
         content="I'll read the file for you.", calls=[call("read", path=GO_MOD)], tools=READ),
    Case("UserTaggedJSONToolCallWithLeadingContent",
         ["I'll run git diff for you.<user>\n"
          '{"name":"bash","arguments":{"command":"git diff main"}}\n</user>'],
         content="I'll run git diff for you.", calls=[call("bash", command="git diff main")],
         tools=BASH),
    Case("StreamingUserTaggedToolAliasAfterContent",
         ["I'll read the file for you.<us", f"er>read\n{READ_ARGS}</user>"],
         content="I'll read the file for you.", calls=[call("read", path=GO_MOD)], tools=READ),
    Case("UserTaggedNonToolContent", ["<user>hello</user>"], content="<user>hello</user>",
         tools=WEATHER),
    Case("ThinkingDefaultsOff", ["<think>Need to reason.</think>\nDirect answer."],
         content="Direct answer."),
    Case("ThinkingDefaultsOffWhenToolsPresent", ["<think>Need to reason.</think>\n" + LAGUNA_CALL],
         calls=[call("get_weather", location="Paris")], tools=WEATHER),
    Case("ThinkingExplicitlyDisabled", ["<think>Hidden?</think>\nDirect answer."],
         content="Direct answer.", think=False),
    Case("ThinkingExplicitlyDisabledDropsLeadingCloseTag", ["</think>\nTokyo\n"],
         content="Tokyo", think=False),
    Case("ThinkingEnabledDropsLeadingCloseTag", ["</think>\nTokyo\n"], content="Tokyo",
         think=True),
    Case("ThinkingDefaultOffDropsLeadingCloseTag", ["</think>\nTokyo\n"], content="Tokyo"),
    Case("ThinkingEnabledUntaggedAnswerIsThinking", ["Direct answer."],
         thinking="Direct answer.", think=True),
    Case("AssistantPrefillContinuesAsContent", [" 42."], content="42.", think=True,
         last={"role": "assistant", "content": "The answer is"}),
    Case("AssistantPrefillContinuesAsToolCall", [LAGUNA_CALL],
         calls=[call("get_weather", location="Paris")], tools=WEATHER, think=True,
         last={"role": "assistant", "thinking": "earlier reasoning"}),
    Case("NonAssistantLastMessageStillPrimesThinking", ["Direct answer."],
         thinking="Direct answer.", think=True, last={"role": "user", "content": "hi"}),
    Case("V8AssistantHistoryStillPrimesThinking", ["Reasoning.</think>Answer."],
         content="Answer.", thinking="Reasoning.", think=True,
         last={"role": "assistant", "content": "Previous."}, parser="poolside-v1"),
    Case("StripsLeadingContentWhitespace", ["\nHello! How can I help?"],
         content="Hello! How can I help?", think=False),
    Case("StripsTrailingContentWhitespace", ["Hello there.\n\n"], content="Hello there.",
         think=False),
    Case("PrimedThinkingThenContent", ["\nReasoning here.\n</think>\nThe answer."],
         content="The answer.", thinking="Reasoning here.", think=True),
    Case("SplitToolTag", ["<think>Need lookup<tool_c",
                          "all>get_weather\n<arg_key>location</arg_key>\n<arg_value>SF"
                          "</arg_value>\n</tool_call>"],
         thinking="Need lookup", calls=[call("get_weather", location="SF")], tools=WEATHER,
         think=True),
    Case("PartialToolCallFakeoutInContent", ["Document literal <tool_call", " fakeout"],
         content="Document literal <tool_call fakeout", tools=WEATHER),
    Case("PartialToolCallFakeoutInThinking", ["<think>Document literal <tool_c", " fakeout"],
         thinking="Document literal <tool_c fakeout", tools=WEATHER, think=True),
    *(Case(f"PartialThinkOpenFakeoutInContent/{label}", ["Document literal <think", " fakeout"],
           content="Document literal <think fakeout", think=think, last=last)
      for label, think, last in (("default off", None, None), ("explicit off", False, None),
                                 ("enabled assistant prefill content", True, PREFILL))),
    *(Case(f"PartialThinkCloseFakeoutAtContentStart/{label}", ["</think", " fakeout"],
           content="</think fakeout", think=think, last=last)
      for label, think, last in (("default off", None, None), ("explicit off", False, None),
                                 ("enabled assistant prefill content", True, PREFILL))),
]  # fmt: skip


def make(case: Case) -> LagunaParser:
    parser = builtin_parser(case.parser)
    assert isinstance(parser, LagunaParser)
    parser.init(case.tools, case.think, last_message=message(case.last))
    return parser


def test_registered_under_ollamas_names() -> None:
    laguna, poolside = builtin_parser("laguna"), builtin_parser("poolside-v1")
    assert isinstance(laguna, LagunaParser) and not isinstance(laguna, PoolsideV1Parser)
    assert isinstance(poolside, PoolsideV1Parser)
    for parser in (laguna, poolside):
        assert parser.has_tool_support and parser.has_thinking_support


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ollama_cases(case: Case) -> None:
    assert feed(make(case), case.chunks) == (case.content, case.thinking, case.calls)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_in_any_pieces(case: Case) -> None:
    same_in_any_pieces(lambda: make(case), "".join(case.chunks), "laguna" + case.name)


def steps(parser: LagunaParser, *pieces: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    out = []
    for i, piece in enumerate(pieces):
        content, thinking, calls = parser.add(piece, i == len(pieces) - 1)
        out.append((content, thinking, [call_json(c) for c in calls]))
    return out


# Ollama's cases that check what each piece gives, not only the whole.
def test_streaming_steps_are_ollamas() -> None:
    by_name = {c.name: c for c in CASES}
    case = by_name["StreamingStandaloneJSONToolCall"]
    assert steps(make(case), *case.chunks) == [("", "", []), ("", "", case.calls)]
    case = by_name["StreamingUserTaggedToolAliasAfterContent"]
    assert steps(make(case), *case.chunks) == [(case.content, "", []), ("", "", case.calls)]
    case = by_name["SplitToolTag"]
    assert steps(make(case), *case.chunks) == [("", case.thinking, []), ("", "", case.calls)]


def test_text_before_a_call_streams_and_the_call_goes_out_whole() -> None:
    parser = make(Case("", [], tools=WEATHER))
    assert parser.add("Checking the ", False) == ("Checking the", "", [])
    assert parser.add("weather.\n<tool_call>get_weather\n<arg_key>location", False) == (
        " weather.", "", [])  # fmt: skip
    assert parser.add("</arg_key>\n<arg_value>Oslo</arg_value>\n", False) == ("", "", [])
    _, _, calls = parser.add("</tool_call>", False)
    assert [call_json(c) for c in calls] == [call("get_weather", location="Oslo")]
    assert parser.add(" Done.", True) == ("Done.", "", [])


# What Ollama does where its own answer depends on the cut, read the same in any pieces.
OWN = [
    # </think> in the answer goes, with the blanks around it.
    Case("close tag mid answer", ["Hello </think> world"], content="Helloworld"),
    # A <think> block in the answer is thinking; the blanks before it stay.
    Case("think block mid answer", ["One <think>x</think> two"], content="One two"),
    Case("think block shown", ["A.</think>B <think>C</think>D"], content="B D",
         thinking="A.C", think=True),
    # The first tag counts: a call before a <think>, text after it.
    Case("call then think", [LAGUNA_CALL + "Then <think>more</think>."], content="Then .",
         calls=[call("get_weather", location="Paris")], tools=WEATHER),
    # An object naming nothing is answer text, the blanks before it too; one with text after
    # it is a call all the same.
    Case("object that calls nothing", ['See {"a": 1} here'], content='See {"a": 1} here',
         tools=WEATHER),
    Case("call then text", ['{"name": "get_weather", "arguments": {}} Done.'],
         content="Done.", calls=[call("get_weather")], tools=WEATHER),
    Case("brace without quote", ["{ not json }"], content="{ not json }", tools=WEATHER),
    # No tools: neither objects nor <user> blocks are calls.
    Case("no tools", ['{"name": "f"} <user>f</user>'], content='{"name": "f"} <user>f</user>'),
    # A <user> block naming no offered tool is text; one left open at the end too.
    Case("unknown user call", ["<user>nope\n<arg_key>a</arg_key><arg_value>1</arg_value></user>"],
         content="<user>nope\n<arg_key>a</arg_key><arg_value>1</arg_value></user>",
         tools=WEATHER),
    Case("user left open", ["Hi <user>get_weather"], content="Hi <user>get_weather",
         tools=WEATHER),
    # Values typed by the schema; a call that names no tool keeps its text values.
    Case("typed values", ["<tool_call>get_weather<arg_key>days</arg_key><arg_value>\n7\n"
                          "</arg_value><arg_key>x</arg_key><arg_value>null</arg_value>"
                          "</tool_call><tool_call>other<arg_key>days</arg_key><arg_value>7"
                          "</arg_value></tool_call>"],
         calls=[call("get_weather", days=7, x=None), call("other", 1, days="7")], tools=WEATHER),
    # A call left open at the end is read as it is.
    Case("call left open", ["<tool_call>get_weather<arg_key>location</arg_key><arg_value>Rome"
                            "</arg_value>"],
         calls=[call("get_weather", location="Rome")], tools=WEATHER),
    # A key runs to the first </arg_key> a value follows, as Go's regexp reads it.
    Case("key with a stray close", ["<tool_call>f<arg_key>a</arg_key>b</arg_key> <arg_value>v"
                                    "</arg_value><arg_key>c</arg_key></tool_call>"],
         calls=[call("f", **{"a</arg_key>b": "v"})]),
]  # fmt: skip


@pytest.mark.parametrize("case", OWN, ids=[c.name for c in OWN])
def test_split_dependent_answers_read_one_way(case: Case) -> None:
    assert feed(make(case), case.chunks) == (case.content, case.thinking, case.calls)
    same_in_any_pieces(lambda: make(case), "".join(case.chunks), "laguna-own" + case.name)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<tool_call>{not json}</tool_call>", "failed to parse Laguna JSON tool call"),
        ('<tool_call>{"arguments": {}}</tool_call>', "empty Laguna tool call name"),
        ('<tool_call>{"name": 5}</tool_call>', "failed to parse Laguna JSON tool call"),
        ("<tool_call>f {not json}</tool_call>", "failed to parse Laguna JSON tool call arguments"),
        ('<tool_call>f {"a": 1} x', "failed to parse Laguna JSON tool call arguments"),
        ('{"name": "get_weather", "arguments": {', "failed to parse Laguna JSON tool call"),
    ],
)
def test_malformed_calls_fail_as_ollamas(text: str, error: str) -> None:
    with pytest.raises(ParseError, match=error):
        feed(make(Case("", [], tools=WEATHER)), [text])
    same_in_any_pieces(lambda: make(Case("", [], tools=WEATHER)), text, "laguna-bad" + text)


# A megabyte of each hostile output, its eighth three times: seconds of CPU.
@pytest.mark.slow
def test_hostile_output_in_linear_time() -> None:
    for tools, think in (([], None), (WEATHER, None), (WEATHER, True)):
        survives_hostile(lambda: make(Case("", [], tools=tools, think=think)))  # noqa: B023


MB = 1 << 20
OWN_HOSTILE = {
    "users": "<user>" * (MB // 6),
    "objects": '{"' * (MB // 2),
    "deep": '{"name": "get_weather", "arguments": ' + "[" * MB,
    "keys": "<tool_call>f" + "<arg_key>a</arg_key>" * (MB // 20),
    "stray_closes": "<tool_call>f<arg_key>" + "</arg_key>x" * (MB // 11),
    "repeated_opens": "<tool_call> " * (MB // 12) + "f</tool_call>",
    "think_blanks": "<think>" + " " * MB,
}


@pytest.mark.parametrize("name", sorted(OWN_HOSTILE))
def test_laguna_hostile_output_in_linear_time(name: str) -> None:
    """What breaks this family's parser in particular: blocks opened and never closed, a call
    nested past what JSON allows, keys without values."""
    for think in (None, True):
        survives_hostile(lambda: make(Case("", [], tools=WEATHER, think=think)),  # noqa: B023
                         outputs={name: OWN_HOSTILE[name]})  # fmt: skip
