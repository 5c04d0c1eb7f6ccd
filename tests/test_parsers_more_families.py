"""Ollama's built-in parsers for functiongemma, lfm2, ministral, nemotron-3-nano, olmo3,
olmo3-think, qwen3-vl and qwen3.5 (issue 31): cases from Ollama's own parser tests, as
inputs and the content, thinking and calls it returns; each output cut into pieces at random
gives what the whole gives; hostile output costs its length and raises nothing but ParseError."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.parser_cases import ends_cost_their_length
from trio_ollama.parsers import ParseError, builtin_parser

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}  # fmt: skip
TOOLS = [WEATHER]

Result = tuple[str, str, list[tuple[str, dict[str, Any]]]]


def run(name: str, pieces: list[str], *, tools: Any = TOOLS, think: Any = None) -> Result:
    parser = builtin_parser(name)
    assert parser is not None
    parser.init(tools, think)
    content, thinking, calls = [], [], []
    for i, piece in enumerate([*pieces, ""]):
        c, t, k = parser.add(piece, i == len(pieces))
        content.append(c)
        thinking.append(t)
        calls.extend(k)
    assert [c.function.index for c in calls] == list(range(len(calls)))
    return (
        "".join(content),
        "".join(thinking),
        [(c.function.name, dict(c.function.arguments)) for c in calls],
    )


# (parser, think, output, expected content, thinking, calls)
CASES: list[tuple[str, Any, str, Result]] = [
    # qwen3.5: thinking first (opened by the prompt, maybe again by the model), Coder calls.
    ("qwen3.5", None, "Let me think</think>Answer", ("Answer", "Let me think", [])),
    (
        "qwen3.5",
        None,
        "<think>\nI should call it.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n"
        "</tool_call>",
        ("", "I should call it.", [("get_weather", {"city": "Paris", "days": 3})]),
    ),
    ("qwen3.5", False, "Plain answer", ("Plain answer", "", [])),
    (
        "qwen3.5",
        None,
        "Thinking without close <tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nOslo\n</parameter>\n</function>\n</tool_call>",
        ("", "Thinking without close", [("get_weather", {"city": "Oslo"})]),
    ),
    # qwen3-vl: JSON calls; the thinking variant always starts inside the thinking.
    (
        "qwen3-vl-instruct",
        None,
        'Hi <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call> bye',
        ("Hibye", "", [("get_weather", {"city": "Paris"})]),
    ),
    (
        "qwen3-vl-thinking",
        False,
        "Thinking here\n</think>\n\nThe answer.",
        ("The answer.", "Thinking here", []),
    ),
    (
        "qwen3-vl-thinking",
        None,
        'hmm <tool_call>{"name": "get_weather", "arguments": {}}</tool_call>',
        ("", "hmm", [("get_weather", {})]),
    ),
    # nemotron-3-nano: blanks and a repeated <think> dropped before the thinking.
    ("nemotron-3-nano", None, "  <think>\nReasoning</think>\n\nDone.", ("Done.", "Reasoning", [])),
    (
        "nemotron-3-nano",
        True,
        "Let me call <tool_call>\n<function=get_weather>\n<parameter=city>\n"
        "Rome\n</parameter>\n</function>\n</tool_call>",
        ("", "Let me call", [("get_weather", {"city": "Rome"})]),
    ),
    ("nemotron-3-nano", False, "No thinking.", ("No thinking.", "", [])),
    # olmo3-think: thinking up to </think>, no calls.
    (
        "olmo3-think",
        None,
        "I think so.  </think>  The answer is 4.",
        ("The answer is 4.", "I think so.", []),
    ),
    # olmo3: Python-like calls, one a line; a section it cannot read is dropped.
    (
        "olmo3",
        None,
        "Sure.<function_calls>get_weather(city=\"Paris\", days=3)\nget_weather(city='Oslo')"
        "</function_calls>",
        (
            "Sure.",
            "",
            [("get_weather", {"city": "Paris", "days": 3}), ("get_weather", {"city": "Oslo"})],
        ),
    ),
    (
        "olmo3",
        None,
        "<function_calls>f(a=[1, 2.5, 'x'], b={'k': None}, c=True)</function_calls> after",
        (" after", "", [("f", {"a": [1, 2.5, "x"], "b": {"k": None}, "c": True})]),
    ),
    ("olmo3", None, "<function_calls>not a call</function_calls>ok", ("ok", "", [])),
    ("olmo3", None, "a <function_ca", ("a <function_ca", "", [])),
    # ministral: [THINK] sections and [TOOL_CALLS]name[ARGS]{json}.
    ("ministral", None, "[THINK]Plan[/THINK]\nAnswer", ("Answer", "Plan", [])),
    (
        "ministral",
        None,
        'Checking [TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "n": [1, {"a": "}"}]}',
        ("Checking", "", [("get_weather", {"city": "Paris", "n": [1, {"a": "}"}]})]),
    ),
    # functiongemma: <escape> strings, numbers, nested values; unreadable calls have no name.
    (
        "functiongemma",
        None,
        "<start_function_call>call:get_weather{city:<escape>Paris, FR<escape>,"
        "days:3,ratio:0.5,ok:true,list:[1,<escape>a<escape>],obj:{k:<escape>v<escape>}}<end_function_call>",
        (
            "",
            "",
            [
                (
                    "get_weather",
                    {
                        "city": "Paris, FR",
                        "days": 3,
                        "ratio": 0.5,
                        "ok": True,
                        "list": [1, "a"],
                        "obj": {"k": "v"},
                    },
                )
            ],
        ),
    ),
    (
        "functiongemma",
        None,
        "Text <start_function_call>garbage<end_function_call> more",
        ("Text  more", "", [("", {})]),
    ),
    # lfm2: Python calls between its tags; the thinking variant reads <think> when asked.
    (
        "lfm2",
        None,
        'Let me check. <|tool_call_start|>[get_weather(city="Paris", days=2)]'
        "<|tool_call_end|> Done",
        ("Let me check.Done", "", [("get_weather", {"city": "Paris", "days": 2})]),
    ),
    ("lfm2-thinking", True, "<think> weighing </think>\n\nAnswer", ("Answer", "weighing", [])),
    ("lfm2-thinking", True, "No think tags", ("No think tags", "", [])),
    (
        "lfm2",
        None,
        "<|tool_call_start|>[a(x=1), get_weather(d={'k': True, 'n': None})]<|tool_call_end|>",
        ("", "", [("a", {"x": 1}), ("get_weather", {"d": {"k": True, "n": None}})]),
    ),
    ("lfm2", None, "<|tool_call_start|>[broken(<|tool_call_end|> rest is swallowed", ("", "", [])),
]


@pytest.mark.parametrize(("name", "think", "output", "expected"), CASES)
def test_parses_as_ollama(name: str, think: Any, output: str, expected: Result) -> None:
    assert run(name, [output], think=think) == expected


@pytest.mark.parametrize(("name", "think", "output", "expected"), CASES)
def test_any_split_gives_the_same(name: str, think: Any, output: str, expected: Result) -> None:
    rng = random.Random(f"{name}{output}")
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(output)), rng.randint(0, min(12, len(output) - 1))))
        pieces = [output[a:b] for a, b in zip([0, *cuts], [*cuts, len(output)], strict=True)]
        assert run(name, pieces, think=think) == expected, pieces


@pytest.mark.parametrize(
    ("name", "output", "message"),
    [
        ("ministral", '[TOOL_CALLS]nope[ARGS]{"a": 1}', "tool 'nope' not found"),
        ("ministral", "[TOOL_CALLS]get_weather[ARGS]{'a': 1}", ""),
        ("qwen3-vl-instruct", "<tool_call>{not json}</tool_call>", ""),
        (
            "qwen3-vl-instruct",
            '<tool_call>{"name": 1}</tool_call>',
            "json: cannot unmarshal number into Go struct field ToolCallFunction.name"
            " of type string",
        ),
        ("qwen3.5", "</think><tool_call>no function</tool_call>", "no <function=...>"),
    ],
)
def test_malformed_calls_are_parse_errors(name: str, output: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        run(name, [output])
    assert message in str(info.value)


MB = 1 << 20
HOSTILE = {
    "unclosed": lambda tag: tag + "x" * MB,
    "nested": lambda tag: tag * (MB // max(1, len(tag))),
    "brackets": lambda tag: tag + "[" * MB,
    "blanks": lambda tag: tag + " " * MB,
    "huge": lambda tag: tag + '{"a": "' + "y" * MB + '"}',
}
OPENERS = {
    "functiongemma": ["<start_function_call>call:f{a:", "<start_function_call>", "call:"],
    "lfm2": ["<|tool_call_start|>[f(a=", "<|tool_call_start|>"],
    "lfm2-thinking": ["<think>", "</think><|tool_call_start|>[f("],
    "ministral": ["[TOOL_CALLS]get_weather[ARGS]", "[THINK]", "[TOOL_CALLS]"],
    "nemotron-3-nano": ["<think>", "<tool_call><function=f><parameter=a>"],
    "olmo3": ["<function_calls>f(a=", "<function_calls>"],
    "olmo3-think": ["</think>", "<think>"],
    "qwen3-vl-instruct": ["<tool_call>", '<tool_call>{"name": "f", "arguments": '],
    "qwen3-vl-thinking": ["<tool_call>", "</think>"],
    "qwen3.5": ["<think>", "</think><tool_call><function=f><parameter=a>"],
}


CLOSERS = {"functiongemma": "<end_function_call>", "lfm2": "<|tool_call_end|>",
           "lfm2-thinking": "<|tool_call_end|>", "ministral": "}", "olmo3": "</function_calls>",
           "olmo3-think": "</think>"}  # fmt: skip


# Slow as a whole (for each opener a megabyte fed in 7-character pieces, and an eighth of it,
# read once for both its endings).
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OPENERS))
@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_a_megabyte_of_hostile_output_costs_its_length(name: str, shape: str) -> None:
    def make() -> Any:
        parser = builtin_parser(name)
        assert parser is not None
        parser.init(TOOLS, True)
        return parser

    for opener in OPENERS[name]:
        tails = ("", CLOSERS.get(name, "</tool_call>"))
        ends_cost_their_length(make, HOSTILE[shape](opener), tails, f"{name} {shape} {opener}")
