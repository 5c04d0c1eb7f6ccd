"""Tool calls and thinking read from model output (`trio_ollama/parsers/`), as Ollama's `tools/`
and `thinking/` packages read them, over real templates and streamed in awkward pieces."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from tests.templates_with_tools import DEEPSEEK_R1, LLAMA32, MISTRAL, QWEN, TIME_TOOL, WEATHER_TOOL
from trio_ollama.gocompat.template import GoTemplate
from trio_ollama.parsers import (
    OutputParser,
    Parsed,
    ParseError,
    ThinkingParser,
    ToolCallParser,
    builtin_parser,
    infer_thinking_tags,
    new_tool_call_id,
    tool_call_tag,
)
from trio_ollama.templates import Message, ToolCall, ToolCallFunction, parse_template

TOOLS = [WEATHER_TOOL, TIME_TOOL]


def tmpl(source: str) -> GoTemplate:
    return parse_template(source).template


def feed(parser: ToolCallParser, pieces: list[str]) -> tuple[list[ToolCall], str]:
    calls: list[ToolCall] = []
    content = ""
    for piece in pieces:
        c, text = parser.add(piece)
        calls += c
        content += text
    return calls, content + parser.content()


def chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize(
    ("source", "tag"),
    [(QWEN, "<tool_call>"), (LLAMA32, "{"), (MISTRAL, "[TOOL_CALLS] ["),
     ("{{ .Prompt }}", "{")],
)  # fmt: skip
def test_tag_learned_from_the_template(source: str, tag: str) -> None:
    assert tool_call_tag(parse_template(source).template) == tag


def test_command_r_tag_from_the_shared_templates() -> None:
    from trio_ollama.templates import builtin_template

    assert tool_call_tag(parse_template(builtin_template("command-r").template).template) == (
        "Action: ```json\n["
    )
    # A template without a .ToolCalls section: any JSON object may be a call.
    for name in ("llama3-instruct", "chatml", "mistral-instruct"):
        assert tool_call_tag(parse_template(builtin_template(name).template).template) == "{"


@pytest.mark.parametrize("split", [None, 1, 3, 7])
def test_qwen_calls_streamed_in_any_pieces(split: int | None) -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris \\"FR\\" {x}"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    pieces = [text] if split is None else [text[i : i + split] for i in range(0, len(text), split)]
    calls, content = feed(ToolCallParser("<tool_call>", TOOLS), pieces)
    assert content == "Let me check.\n"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [c.function.index for c in calls] == [0, 1]
    assert dict(calls[0].function.arguments) == {"city": 'Paris "FR" {x}'}
    assert dict(calls[1].function.arguments) == {}


def test_llama_bare_json_with_parameters_and_string_arguments() -> None:
    calls, content = feed(
        ToolCallParser("{", TOOLS),
        chars('{"name": "get_weather", "parameters": "{\\"city\\": \\"Oslo\\"}"}'),
    )
    assert content == "" and len(calls) == 1
    assert calls[0].function.go_json() == {
        "index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}  # fmt: skip


def test_bare_tag_only_when_the_output_starts_with_it() -> None:
    text = 'The JSON is {"name": "get_weather", "arguments": {"city": "Oslo"}}'
    calls, content = feed(ToolCallParser("{", TOOLS), chars(text))
    assert calls == [] and content == text
    # JSON that names no offered tool stays content too.
    calls, content = feed(ToolCallParser("{", TOOLS), ['{"answer": 42}'])
    assert calls == [] and content == '{"answer": 42}'


def test_mistral_list_of_calls() -> None:
    text = (
        '[TOOL_CALLS] [{"name": "get_time", "arguments": {}}, '
        '{"name": "get_weather", "arguments": {"city": "Rome"}}]'
    )
    calls, content = feed(ToolCallParser("[TOOL_CALLS] [", TOOLS), chars(text))
    assert [(c.function.name, c.function.index) for c in calls] == [
        ("get_time", 0), ("get_weather", 1)]  # fmt: skip
    assert content == ""


def test_command_r_objects_as_ollama_reads_them() -> None:
    """command-r's calls carry `tool_name`, not `name`: Ollama takes the whole object as the
    arguments (its search finds no `name`), and so does this."""
    text = 'Action: ```json\n[\n    {\n        "tool_name": "get_weather",\n' \
        '        "parameters": {"city": "Paris"}\n    }\n]```'  # fmt: skip
    calls, _ = feed(ToolCallParser("Action: ```json\n[", TOOLS), chars(text))
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert dict(calls[0].function.arguments) == {
        "tool_name": "get_weather", "parameters": {"city": "Paris"}}  # fmt: skip


def test_a_longer_name_is_waited_for() -> None:
    parser = ToolCallParser("<tool_call>", [{"function": {"name": "get"}}, WEATHER_TOOL])
    calls, _ = parser.add('<tool_call>{"name": "get')
    assert calls == []
    calls, _ = parser.add('_weather", "arguments": {"city": "Oslo"}}')
    assert [c.function.name for c in calls] == ["get_weather"]


def test_tool_call_ids() -> None:
    ids = {new_tool_call_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"call_[a-z0-9]{8}", i) for i in ids)


# ----- thinking


@pytest.mark.parametrize(
    ("source", "tags"),
    [(QWEN, ("<think>", "</think>")), (DEEPSEEK_R1, ("<think>", "</think>")),
     (LLAMA32, ("", "")), ("{{ .Thinking }}", ("", "")),
     ("{{ range .Messages }}<t>{{ .Thinking }}</t>{{ end }}", ("<t>", "</t>"))],
)  # fmt: skip
def test_thinking_tags_inferred(source: str, tags: tuple[str, str]) -> None:
    assert infer_thinking_tags(parse_template(source).template) == tags


def test_no_shared_template_thinks() -> None:
    from trio_ollama.templates import builtin_names, builtin_template

    for name in builtin_names():
        assert infer_thinking_tags(parse_template(builtin_template(name).template).template) == (
            "", "")  # fmt: skip


@pytest.mark.parametrize("split", [1, 2, 5, 100])
def test_thinking_split_from_the_answer(split: int) -> None:
    text = "  <think>\n  Paris is in France.\n</think>\n\nParis."
    parser = ThinkingParser("<think>", "</think>")
    thinking = content = ""
    for i in range(0, len(text), split):
        t, c = parser.add(text[i : i + split])
        thinking += t
        content += c
    assert thinking == "Paris is in France.\n"
    assert content == "Paris."


def test_no_thinking_leaves_the_text_as_it_came() -> None:
    parser = ThinkingParser("<think>", "</think>")
    assert parser.add("  ") == ("", "")
    assert parser.add("Hello <think>") == ("", "  Hello <think>")


def test_output_parser_thinking_then_calls() -> None:
    prompt = "<|im_start|>assistant\n<think>\n"
    parser = OutputParser.for_request(tmpl(QWEN), prompt, think=True, tools=TOOLS)
    out: list[Parsed] = []
    text = 'Weather needs a tool.</think>\n\n<tool_call>\n{"name": "get_weather", ' \
        '"arguments": {"city": "Oslo"}}\n</tool_call>'  # fmt: skip
    for ch in text:
        out += parser.add(ch)
    out += parser.add("", done=True)
    thinking = "".join(p.thinking for p in out)
    assert thinking == "Weather needs a tool."  # the prompt opened the thinking
    assert "".join(p.content for p in out) == ""
    [with_calls] = [p for p in out if p.tool_calls]
    assert with_calls.content == "" and with_calls.tool_calls[0].function == ToolCallFunction(
        name="get_weather", arguments={"city": "Oslo"}, index=0)  # fmt: skip
    assert re.fullmatch(r"call_[a-z0-9]{8}", with_calls.tool_calls[0].id)


def test_output_parser_off_when_not_asked() -> None:
    parser = OutputParser.for_request(tmpl(QWEN), "", think=False)
    assert not parser.active
    assert parser.add("<think>x</think>y") == [Parsed("<think>x</think>y")]


# ----- built-in family parsers (chosen by a model's PARSER)


def run_builtin(name: str, pieces: list[str], *, tools: list[Any], think: bool | None) -> tuple[
    str, str, list[ToolCall]
]:  # fmt: skip
    parser = builtin_parser(name)
    assert parser is not None
    parser.init(tools, think)
    content = thinking = ""
    calls: list[ToolCall] = []
    for i, piece in enumerate(pieces):
        c, t, k = parser.add(piece, i == len(pieces) - 1)
        content, thinking, calls = content + c, thinking + t, calls + k
    return content, thinking, calls


@pytest.mark.parametrize("split", [1, 4, 1000])
def test_qwen3_thinking_parser(split: int) -> None:
    # The prompt ended with <think>: the output starts inside the thinking.
    text = (
        "The user wants weather.\n</think>\n\nLet me look.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    )
    pieces = [text[i : i + split] for i in range(0, len(text), split)]
    content, thinking, calls = run_builtin("qwen3-thinking", pieces, tools=TOOLS, think=True)
    assert thinking == "The user wants weather."
    assert content == "Let me look."
    assert [(c.function.name, dict(c.function.arguments), c.function.index) for c in calls] == [
        ("get_weather", {"city": "Oslo"}, 0)]  # fmt: skip


def test_qwen3_without_thinking_and_a_broken_call() -> None:
    content, thinking, calls = run_builtin("qwen3", ["<think>x</think>Hi"], tools=[], think=True)
    assert (content, thinking, calls) == ("<think>x</think>Hi", "", [])
    with pytest.raises(ParseError):
        run_builtin("qwen3", ["<tool_call>{nope</tool_call>"], tools=[], think=None)


def test_qwen3_coder_xml_calls_typed_by_the_schema() -> None:
    tool = {"type": "function", "function": {"name": "book", "parameters": {
        "type": "object", "properties": {
            "seats": {"type": "integer"}, "window": {"type": "boolean"},
            "price": {"type": "number"}, "tags": {"type": "array"},
            "note": {"type": "string"}}}}}  # fmt: skip
    text = (
        "Booking now.\n<tool_call>\n<function=book>\n<parameter=seats>\n2\n</parameter>\n"
        "<parameter=window>\ntrue\n</parameter>\n<parameter=price>\n12.5\n</parameter>\n"
        '<parameter=tags>\n["a", "b"]\n</parameter>\n<parameter=note>\n1 < 2 & "x"\n'
        "</parameter>\n</function>\n</tool_call>"
    )
    content, _, calls = run_builtin("qwen3-coder", list(text), tools=[tool], think=None)
    assert content == "Booking now."
    [call] = calls
    assert call.function.name == "book"
    want = {"seats": 2, "window": True, "price": 12.5, "tags": ["a", "b"], "note": '1 < 2 & "x"'}
    assert dict(call.function.arguments) == want


def test_unknown_parser_names_fall_back_to_the_template() -> None:
    assert builtin_parser("harmony-someday") is None


def test_qwen3_coder_values_read_as_go_reads_them() -> None:
    """Go's ParseInt and ParseFloat, not Python's int() and float(): what they refuse, and
    numbers out of range, stay text (and never become NaN or Infinity, which JSON lacks)."""
    from trio_ollama.parsers.qwen3 import _typed

    assert _typed("12", ["integer"]) == 12
    assert _typed("-3", ["integer"]) == -3
    for raw in (" 12 ", "1_000", "١٢"):
        assert _typed(raw, ["integer"]) == raw
        assert _typed(raw, ["number"]) == raw
    assert _typed("2.5", ["number"]) == 2.5
    assert _typed("4.0", ["number"]) == 4
    assert _typed("1e400", ["number"]) == "1e400"
    for raw in ("nan", "inf", "-Infinity"):
        assert _typed(raw, ["number"]) == raw


# ----- any split of the output reads as the whole (the parsers keep their place between pieces)


def random_split(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, min(40, len(text) - 1))))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]


SPLIT_CALLS = [
    ("<tool_call>", "Let me check.\n<tool_call>\n"
     '{"name": "get_weather", "arguments": {"city": "Paris \\"FR\\" {x}"}}\n</tool_call>\n'
     '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'),
    ("{", '{"name": "get_weather", "parameters": "{\\"city\\": \\"Oslo [x]\\"}"}'),
    ("[TOOL_CALLS] [", '[TOOL_CALLS] [{"name": "get_time", "arguments": {}}, '
     '{"name": "get_weather", "arguments": {"city": "Rome"}}]'),
    ("[", '[{"name": "get_time", "arguments": {}}, {"get_weather": {"city": "}]"}}] Done.'),
    ("Action: ```json\n[", 'Action: ```json\n[\n    {\n        "tool_name": "get_weather",\n'
     '        "parameters": {"city": "Paris"}\n    }\n]```'),
]  # fmt: skip


@pytest.mark.parametrize(("tag", "text"), SPLIT_CALLS)
def test_tool_calls_read_alike_in_300_random_splits(tag: str, text: str) -> None:
    whole = feed(ToolCallParser(tag, TOOLS), [text])
    assert whole[0], "the output holds calls"
    rng = random.Random(tag)
    for _ in range(300):
        assert feed(ToolCallParser(tag, TOOLS), random_split(text, rng)) == whole


CODER_PROPERTIES = {"seats": {"type": "integer"}, "tags": {"type": "array"}}
CODER_TOOL = {"type": "function", "function": {"name": "book", "parameters": {
    "type": "object", "properties": CODER_PROPERTIES}}}  # fmt: skip
SPLIT_BUILTIN = [
    ("qwen3-thinking", "  <think>The user wants weather.\n</think>\n\nLet me look.\n<tool_call>\n"
     '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n\n<tool_call>'
     '{"name": "get_time", "arguments": {}}</tool_call>Done.'),
    ("qwen3", 'Sure.\n\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n  '),
    ("qwen3-coder", "Booking.\n<tool_call>\n<function=book>\n<parameter=seats>\n2\n</parameter>\n"
     "<parameter=tags>\n[\"a\", \"</b>\"]\n</parameter>\n</function>\n</tool_call>\n"
     "<tool_call><function=book><parameter=seats>x</parameter></function></tool_call>"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text"), SPLIT_BUILTIN)
def test_builtin_parsers_read_alike_in_300_random_splits(name: str, text: str) -> None:
    tools = [CODER_TOOL] if name == "qwen3-coder" else TOOLS
    whole = run_builtin(name, [text], tools=tools, think=True)
    assert whole[2], "the output holds calls"
    rng = random.Random(name)
    for _ in range(300):
        assert run_builtin(name, random_split(text, rng), tools=tools, think=True) == whole


def test_thinking_reads_alike_in_300_random_splits() -> None:
    text = "  \n <think>\n  Paris is in France.\n</think>\n\nParis </think> <think>."

    def run(pieces: list[str]) -> tuple[str, str]:
        parser = ThinkingParser("<think>", "</think>")
        out = [parser.add(piece) for piece in pieces]
        return "".join(t for t, _ in out), "".join(c for _, c in out)

    whole = run([text])
    assert whole == ("Paris is in France.\n", "Paris </think> <think>.")
    rng = random.Random(0)
    for _ in range(300):
        assert run(random_split(text, rng)) == whole


@pytest.mark.parametrize("name", ["deepseek3", "cogito", "cohere", "laguna"])
def test_the_server_tells_a_family_parser_its_prefill(name: str) -> None:
    """The chat path hands the conversation's last message to the built-in parser: an
    assistant's answer left open is continued, so the output is answer text, not thinking."""

    def read(last: Message | None) -> tuple[str, str]:
        parser = OutputParser.for_request(None, "", think=True, builtin=name, last=last)
        chunks = [*parser.add("far and wide"), *parser.add("", done=True)]
        return "".join(c.content for c in chunks), "".join(c.thinking for c in chunks)

    assert read(Message(role="assistant", content="So")) == ("far and wide", "")
    assert read(None) != ("far and wide", "")  # without it, the output starts thinking
