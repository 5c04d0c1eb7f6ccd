"""Ollama's `glimmer` parser (issue 31): the cases of Ollama's glimmer_test.go as inputs and
expected outputs, each also in 300 random cuts, and 1 MB of hostile output read in time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.parser_cases import (
    costs_its_length,
    feed,
    read_all,
    same_in_any_pieces,
    survives_hostile,
)
from trio_ollama.parsers import ParseError, builtin_parser
from trio_ollama.parsers.glimmer import GlimmerParser, resolve_tool


def tool(name: str, **props: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": props}}}  # fmt: skip


def atem(name: str, parameters: str = "") -> str:
    return (
        f'<atem:function_calls>\n<atem:invoke name="{name}">\n{parameters}</atem:invoke>\n'
        "</atem:function_calls>"
    )


def param(name: str, value: str) -> str:
    return f'<atem:parameter name="{name}">{value}</atem:parameter>\n'


STRING = {"type": "string"}
WEATHER = tool("get_weather", city=STRING)
BASH = tool("muse.bash", command=STRING)
READ = tool("read", path=STRING)
ECHO = tool("echo", text=STRING)
RUN = tool("tools.run", text=STRING, count={"type": "integer"}, enabled={"type": "boolean"},
           items={"type": "array"}, config={"type": "object"},
           choice={"anyOf": [{"type": "null"}, {"type": "string"}]})  # fmt: skip
BASH_ATEM = atem("muse.bash", param("command", "pwd && ls -la"))
BASH_CALL = [{"name": "muse.bash", "arguments": {"command": "pwd && ls -la"}, "index": 0}]
READ_CALL = [{"name": "read", "arguments": {"path": "go.mod"}, "index": 0}]
CONTROL_VALUE = "literal <|eot|> and <|start|>assistant to=user<|message|> text"

# (name, tools, think, output, content, thinking, calls)
Case = tuple[str, list[Any], Any, str, str, str, list[dict[str, Any]]]
CASES: list[Case] = [
    ("final answer", [], None, " to=user<|message|>Hello", "Hello", "", []),
    ("self recipient is thinking", [], None, " to=self<|message|>Check the facts.", "",
     "Check the facts.", []),
    ("thinking suppressed", [], False, " to=self<|message|>Check the facts.<|eom|>"
     "<|start|>assistant to=user<|message|>Answer<|eot|>", "Answer", "", []),
    ("ATEM call", [WEATHER], None,
     " to=get_weather<|message|>" + atem("get_weather", param("city", "SF")) + "<|eot|>", "", "",
     [{"name": "get_weather", "arguments": {"city": "SF"}, "index": 0}]),
    ("value types and whitespace", [RUN], None, " to=tools.run<|message|>" + atem(
        "tools.run", param("text", " keep  spaces ") + param("count", "3")
        + param("enabled", "true") + param("items", '["one", "two"]')
        + param("config", '{"mode":"fast"}') + param("choice", "null")), "", "",
     [{"name": "tools.run", "arguments": {"text": " keep  spaces ", "count": 3, "enabled": True,
       "items": ["one", "two"], "config": {"mode": "fast"}, "choice": None}, "index": 0}]),
    ("value may hold control tokens", [ECHO], None,
     " to=echo<|message|>" + atem("echo", param("text", CONTROL_VALUE)) + "<|eot|>", "", "",
     [{"name": "echo", "arguments": {"text": CONTROL_VALUE}, "index": 0}]),
    ("messages and indices", [tool("first", x={"type": "integer"}), tool("second")], None,
     " to=self<|message|>Think<|eom|><|start|>assistant to=first<|message|>"
     + atem("first", param("x", "1")) + "<|eom|><|start|>assistant to=second<|message|>"
     + atem("second") + "<|eot|>", "", "Think",
     [{"name": "first", "arguments": {"x": 1}, "index": 0},
      {"name": "second", "arguments": {}, "index": 1}]),
    ("stray message tag in invoke name", [READ], None,
     " to=read<|message|>" + atem("read<|message|>", param("path", "go.mod")) + "<|eot|>", "",
     "", READ_CALL),
    ("message tag replaces invoke terminator", [READ], None,
     ' to=read<|message|><atem:function_calls>\n<atem:invoke name="read<|message|>'
     + param("path", "go.mod") + "</atem:invoke>\n</atem:function_calls><|eot|>", "", "",
     READ_CALL),
    ("message tag mid-name", [READ], None,
     ' to=read<|message|><atem:function_calls>\n<atem:invoke name="re<|message|>ad">'
     + param("path", "go.mod") + "</atem:invoke>\n</atem:function_calls><|eot|>", "", "",
     READ_CALL),
    ("repeated message tags", [READ], None,
     ' to=read<|message|><atem:function_calls>\n<atem:invoke name="read<|message|><|message|>">'
     + param("path", "go.mod") + "</atem:invoke>\n</atem:function_calls><|eot|>", "", "",
     READ_CALL),
    ("message tag in a value is kept", [ECHO], None,
     " to=echo<|message|>" + atem("echo", param("text", "keep <|message|> literal")) + "<|eot|>",
     "", "", [{"name": "echo", "arguments": {"text": "keep <|message|> literal"}, "index": 0}]),
    *[(f"namespaced self reference {r} {i}", [READ], None,
       f" to={r}<|message|>" + atem(i, param("path", "go.mod")) + "<|eot|>", "", "", READ_CALL)
      for r, i in (("read", "read.read"), ("read.read", "read.read"), ("read.read", "read"))],
    ("fallback: namespace recipient", [BASH], None, " to=muse<|message|>" + BASH_ATEM + "<|eom|>",
     "", "", BASH_CALL),
    ("fallback: missing recipient", [BASH], None, "<|message|>" + BASH_ATEM + "<|eom|>", "", "",
     BASH_CALL),
    ("fallback: user recipient", [BASH], None, " to=user<|message|>" + BASH_ATEM + "<|eot|>", "",
     "", BASH_CALL),
    ("fallback: wrapper as recipient", [BASH], None,
     " to=atem:function_calls<|message|>" + BASH_ATEM + "<|eom|>", "", "", BASH_CALL),
    ("fallback: after thinking", [BASH], None, " to=self<|message|>let me look<|eom|>"
     "<|start|>assistant<|message|>" + BASH_ATEM + "<|eom|>", "", "let me look", BASH_CALL),
    ("fallback: implicit boundary", [BASH], None, "<|message|>" + BASH_ATEM
     + "<|start|>assistant to=user<|message|>Done<|eot|>", "Done", "", BASH_CALL),
    ("fallback streaming", [BASH], None, "<|message|>" + atem("muse.bash", param("command", "pwd"))
     + "<|eom|>", "", "", [{"name": "muse.bash", "arguments": {"command": "pwd"}, "index": 0}]),
    ("resembling a call: undeclared tool", [BASH], None,
     " to=user<|message|>" + atem("other.run") + "<|eot|>", atem("other.run"), "", []),
    ("resembling a call: leading prose", [BASH], None,
     " to=user<|message|>Running:\n" + BASH_ATEM + "<|eot|>", "Running:\n" + BASH_ATEM, "", []),
    ("resembling a call: trailing prose", [BASH], None,
     " to=user<|message|>" + BASH_ATEM + "\nDone.<|eot|>", BASH_ATEM + "\nDone.", "", []),
    ("resembling a call: no tools", [], None, " to=user<|message|>" + BASH_ATEM + "<|eot|>",
     BASH_ATEM, "", []),
    ("undeclared recipient remains content", [], None,
     " to=not_a_tool<|message|>" + atem("not_a_tool"), atem("not_a_tool"), "", []),
    ("implicit message boundary", [WEATHER], None, " to=self<|message|>Think"
     "<|start|>assistant to=get_weather<|message|>" + atem("get_weather", param("city", "SF"))
     + "<|start|>assistant to=user<|message|>Done<|eot|>", "Done", "Think",
     [{"name": "get_weather", "arguments": {"city": "SF"}, "index": 0}]),
    ("split control token withheld", [], None, " to=user<|message|>Hello<|eot|>", "Hello", "",
     []),
    ("literal start token in content", [], None, " to=user<|message|>Use `<|start|>` here.",
     "Use `<|start|>` here.", "", []),
    ("literal start token in thinking", [], None, " to=self<|message|>Use `<|start|>` here.", "",
     "Use `<|start|>` here.", []),
    # TestGlimmerParserRendererToolLoopRoundTrip's three turns.
    ("round trip: issue", [tool("issue", number={"type": "integer"}), READ], None,
     " to=self<|message|>I need the issue details.<|eom|><|start|>assistant to=issue<|message|>"
     + atem("issue", param("number", "1736")) + "<|eot|>", "", "I need the issue details.",
     [{"name": "issue", "arguments": {"number": 1736}, "index": 0}]),
    ("round trip: answer", [tool("issue", number={"type": "integer"}), READ], None,
     " to=self<|message|>I have enough evidence.<|eom|><|start|>assistant to=user<|message|>"
     "The proposed fix is plausible.<|eot|>", "The proposed fix is plausible.",
     "I have enough evidence.", []),
    # Beyond Ollama's tables: no header at all is the answer as it is; a header that names no
    # one Glimmer addresses is text.
    ("no header", [], None, "Hello there", "Hello there", "", []),
    ("header for no one is text", [WEATHER], None,
     " to=user<|message|>a <|start|>assistant to=nobody<|message|>b<|eot|>",
     "a <|start|>assistant to=nobody<|message|>b", "", []),
]  # fmt: skip


def make(tools: list[Any], think: Any) -> Callable[[], Any]:
    def new() -> Any:
        parser = builtin_parser("glimmer")
        assert parser is not None
        parser.init(tools, think)
        return parser

    return new


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ollamas_case(case: Case) -> None:
    _, tools, think, output, content, thinking, calls = case
    assert feed(make(tools, think)(), [output]) == (content, thinking, calls)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_any_cuts_give_the_same(case: Case) -> None:
    name, tools, think, output, *_ = case
    same_in_any_pieces(make(tools, think), output, seed=name)


@pytest.mark.parametrize("case", CASES[:8], ids=[c[0] for c in CASES[:8]])
def test_every_single_cut_gives_the_same(case: Case) -> None:
    """Ollama's tests cut some outputs at every place; so does this one."""
    _, tools, think, output, content, thinking, calls = case
    for at in range(len(output) + 1):
        got = feed(make(tools, think)(), [output[:at], output[at:]])
        assert got == (content, thinking, calls), at


def test_text_streams_and_a_split_end_token_is_held() -> None:
    parser = make([], None)()
    assert parser.add(" to=user<|message|>Hello<|eo", False) == ("Hello", "", [])
    assert parser.add("t|>", True) == ("", "", [])


def test_a_held_answer_never_leaks_part_of_a_call() -> None:
    output = "<|message|>" + atem("muse.bash", param("command", "pwd")) + "<|eom|>"
    parser = make([BASH], None)()
    for ch in output[:-1]:
        assert parser.add(ch, False) == ("", "", [])


@pytest.mark.parametrize(
    ("tools", "output", "error"),
    [
        ([tool("get_weather")], " to=get_weather<|message|>" + atem("read_file"),
         'Glimmer recipient "get_weather" does not match ATEM invoke "read_file"'),
        ([tool("get_weather")], ' to=get_weather<|message|>{"city":"SF"}',
         "parse Glimmer call to get_weather: missing ATEM function_calls wrapper"),
        ([tool("get_weather")], " to=get_weather<|message|><atem:function_calls>x"
         "</atem:function_calls>",
         "parse Glimmer call to get_weather: missing ATEM invoke wrapper"),
        ([ECHO], " to=echo<|message|>" + atem("echo", '<atem:parameter name="text">x\n'),
         'parse Glimmer call to echo: unterminated ATEM parameter "text"'),
        ([ECHO], " to=echo<|message|>" + atem("echo", "junk\n"),
         "parse Glimmer call to echo: malformed ATEM parameter"),
        ([ECHO], " to=echo<|message|>", "parse Glimmer call to echo: missing ATEM "
         "function_calls wrapper"),
    ],
    ids=["mismatched invoke", "no wrapper", "no invoke", "unterminated", "junk", "empty"],
)  # fmt: skip
def test_a_malformed_call_is_an_error(tools: list[Any], output: str, error: str) -> None:
    with pytest.raises(ParseError) as raised:
        feed(make(tools, None)(), [output])
    assert str(raised.value) == error
    same_in_any_pieces(make(tools, None), output, seed=error)


@pytest.mark.parametrize(
    ("name", "resolved"),
    [("read", "read"), ("read.read", "read"), ("repo.read", "repo.read"),
     ("functions.read", None), ("write.write", None), ("repo.repo.read", "repo.read")],
)  # fmt: skip
def test_namespace_resolution_stays_strict(name: str, resolved: str | None) -> None:
    tools: Mapping[str, Any] = {"read": {}, "repo.read": {}}
    assert resolve_tool(tools, name) == resolved


def test_calls_only_name_declared_tools_with_rising_indices() -> None:
    """FuzzGlimmerParser's property on its seeds, each cut at every place."""
    seeds = [" to=user<|message|>Hello<|eot|>",
             " to=self<|message|>Think<|eom|><|start|>assistant to=user<|message|>Done<|eot|>",
             " to=echo<|message|>" + atem("echo", param("text", "value")),
             ' to=echo<|message|><atem:function_calls><atem:invoke name="other">',
             "literal <|start|> and <|message|> text"]  # fmt: skip
    for seed in seeds:
        for at in range(len(seed) + 1):
            try:
                _, _, calls = feed(make([ECHO], None)(), [seed[:at], seed[at:]])
            except ParseError:
                continue
            assert all(c["name"] == "echo" for c in calls)
            assert [c["index"] for c in calls] == list(range(len(calls)))


MB = 1 << 20
GLIMMER_HOSTILE = {
    "recipient never ends": "<|start|>assistant to=" + "a" * MB,
    "headers for no one": "<|start|>assistant to=x y" * (MB // 24),
    "message tags in an invoke name": " to=echo<|message|><atem:function_calls>\n"
    '<atem:invoke name="' + "<|message|>" * (MB // 11),
    "huge argument": " to=echo<|message|>" + atem("echo", param("text", "y" * MB)),
    "unclosed call": " to=echo<|message|><atem:function_calls>" + "<|eot|>" * (MB // 7),
    "held blanks": " to=user<|message|>" + " " * MB,
    "no header": "x" * MB,
    "starts in thinking": " to=self<|message|>" + "<|start|>" * (MB // 9),
    "partial starts": " to=user<|message|>" + "<|star" * (MB // 6),
    "many messages": "<|start|>assistant to=user<|message|>a<|eom|>" * (MB // 45),
}


@pytest.mark.parametrize("name", sorted(GLIMMER_HOSTILE))
@pytest.mark.parametrize("piece", [16, MB * 2])
def test_glimmers_own_hostile_output(name: str, piece: int) -> None:
    read = make([ECHO], None)
    costs_its_length(lambda part: read_all(read(), part, piece), GLIMMER_HOSTILE[name])


# A megabyte of each hostile output, its eighth three times: seconds of CPU.
@pytest.mark.slow
def test_the_shared_hostile_output() -> None:
    survives_hostile(make([ECHO], None))
    survives_hostile(make([], None))


def test_registered() -> None:
    assert isinstance(builtin_parser("glimmer"), GlimmerParser)
