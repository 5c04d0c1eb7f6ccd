"""gpt-oss's harmony output (`trio_ollama.parsers.harmony`): Ollama's own cases from
`harmony/harmonyparser_test.go` and `server/routes_harmony_streaming_test.go`, as inputs and
the content, thinking and calls they give; any split of an output reads as the whole; hostile
output costs its length and raises nothing but `ParseError`."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.parser_cases import costs_its_length, read_all
from trio_ollama.parsers import ParseError, builtin_parser
from trio_ollama.parsers.harmony import FunctionNames, HarmonyParser, _identifier, parse_header
from trio_ollama.prompt import ModelPrompt, _uses_harmony
from trio_ollama.templates import Message, ToolCall

Output = tuple[str, str, list[tuple[str, dict[str, Any]]]]

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}  # fmt: skip
CALCULATE = {"type": "function", "function": {"name": "calculate", "parameters": {
    "type": "object", "properties": {"expression": {"type": "string"}}}}}  # fmt: skip
TOOLS = [WEATHER, CALCULATE]


def calls_of(calls: list[ToolCall]) -> list[tuple[str, dict[str, Any]]]:
    return [(c.function.name, dict(c.function.arguments)) for c in calls]


def parser(tools: list[Any] = TOOLS, last: Message | None = None) -> HarmonyParser:
    made = builtin_parser("harmony")
    assert isinstance(made, HarmonyParser)
    made.init(tools, True)
    if last is not None:
        made.prefill(last)
    return made


def run(pieces: list[str], tools: list[Any] = TOOLS, last: Message | None = None) -> Output:
    """The whole output, its last piece marked done (where the call is read)."""
    p = parser(tools, last)
    content = thinking = ""
    calls: list[ToolCall] = []
    for i, piece in enumerate(pieces):
        c, t, k = p.add(piece, i == len(pieces) - 1)
        content, thinking, calls = content + c, thinking + t, calls + k
    return content, thinking, calls_of(calls)


# ----- headers (TestHeaderParsing)


@pytest.mark.parametrize(
    ("raw", "role", "channel", "recipient"),
    [
        ("assistant<|channel|>analysis", "assistant", "analysis", ""),
        ("assistant<|channel|>analysis to=functions.get_weather", "assistant", "analysis",
         "functions.get_weather"),
        ("assistant to=functions.get_weather<|channel|>analysis", "assistant", "analysis",
         "functions.get_weather"),
        # The recipient in the role's place makes the role "tool".
        ("to=functions.get_weather<|channel|>analysis", "tool", "analysis",
         "functions.get_weather"),
        # A word after the recipient is ignored.
        ("assistant to=functions.get_weather abc<|channel|>analysis", "assistant", "analysis",
         "functions.get_weather"),
        ("assistant<|channel|>commentary to=functions.get_weather <|constrain|>json", "assistant",
         "commentary", "functions.get_weather"),
        ("assistant to=functions.get_weather<|channel|>commentary <|constrain|>json",
         "assistant", "commentary", "functions.get_weather"),
        # The constraint glued to the word before it.
        ("assistant<|channel|>commentary to=functions.get_weather<|constrain|>json", "assistant",
         "commentary", "functions.get_weather"),
        ("assistant to=functions.get_weather<|channel|>commentary<|constrain|>json",
         "assistant", "commentary", "functions.get_weather"),
    ],
)  # fmt: skip
def test_headers_read_as_ollama_reads_them(
    raw: str, role: str, channel: str, recipient: str
) -> None:
    header = parse_header(raw)
    assert (header.role, header.channel, header.recipient) == (role, channel, recipient)


# ----- whole outputs (TestHarmonyParserHeaderEvent, TestHarmonyParserNonStreaming: after the
# implied `<|start|>assistant`, so the non-implicit cases follow an empty first message)

EMPTY_FIRST = "<|message|><|end|>"


@pytest.mark.parametrize(
    ("text", "output"),
    [
        (EMPTY_FIRST + "<|start|>user<|message|>What is 2 + 2?<|end|>",
         ("What is 2 + 2?", "", [])),
        (EMPTY_FIRST + "<|start|>assistant<|channel|>analysis<|message|>The answer is 4<|end|>",
         ("", "The answer is 4", [])),
        # A commentary message to a function is a call, read when the output ends.
        (EMPTY_FIRST + "<|start|>assistant<|channel|>commentary to=functions.calculate"
         '<|message|>{"expression": "2+2"}<|end|>',
         ("", "", [("calculate", {"expression": "2+2"})])),
        (EMPTY_FIRST + "<|start|>user<|message|><|end|>", ("", "", [])),
        (EMPTY_FIRST + "<|start|>user<|message|>Hello<|end|><|start|>assistant<|message|>Hi!"
         "<|end|>", ("HelloHi!", "", [])),
        ("<|channel|>analysis<|message|>Thinking about the request<|end|>",
         ("", "Thinking about the request", [])),
        # The call the runner stopped at (`<|call|>` ends the output, unseen).
        ("<|channel|>analysis<|message|>User asks weather in SF. We need location. Use "
         'get_current_weather with location "San Francisco, CA".<|end|><|start|>assistant'
         "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
         '{"location":"San Francisco, CA"}',
         ("", 'User asks weather in SF. We need location. Use get_current_weather with location '
          '"San Francisco, CA".', [("get_weather", {"location": "San Francisco, CA"})])),
    ],
)  # fmt: skip
def test_whole_outputs(text: str, output: Output) -> None:
    assert run([text]) == output


# ----- piece by piece (TestHarmonyParserStreaming, TestChatHarmonyParserStreamingRealtime):
# each step's input and what it gives at once


def steps(pieces: list[tuple[str, str, str]], *, first: str = "", tools: list[Any] = TOOLS) -> None:
    p = parser(tools)
    if first:
        assert p.add(first, False) == ("", "", [])
    for i, (piece, content, thinking) in enumerate(pieces):
        got = p.add(piece, False)
        assert got == (content, thinking, []), (i, piece, got)


def test_a_message_streamed_a_few_characters_at_a_time() -> None:
    steps([("<", "", ""), ("|", "", ""), ("start|>u", "", ""), ("ser<|mess", "", ""),
           ("age|>Hi", "Hi", ""), (" there", " there", ""), ("<|e", "", ""), ("nd|>", "", "")],
          first=EMPTY_FIRST)  # fmt: skip


def test_a_channel_streamed() -> None:
    steps([("<|start|>assistant", "", ""), ("<|chan", "", ""), ("nel|>analysis", "", ""),
           ("<|message|>", "", ""), ("Thinking", "", "Thinking"), ("...", "", "..."),
           ("<|end|>", "", "")], first=EMPTY_FIRST)  # fmt: skip


def test_an_unknown_channel_is_the_answer() -> None:
    steps([("<|channel|>thinking", "", ""), ("<|message|>", "", ""),
           ("Processing request", "Processing request", ""), ("<|end|>", "", "")])  # fmt: skip


def test_a_partial_end_tag_that_is_no_end_tag_is_text() -> None:
    steps([("<|start|>user<|message|>test<|e", "test", ""),
           ("xample|>more", "<|example|>more", ""), ("<|end|>", "", "")],
          first=EMPTY_FIRST)  # fmt: skip


def test_content_streams_as_it_arrives() -> None:
    steps([("<|message|>Hello", "Hello", ""), (", world", ", world", ""), ("!<|end|>", "!", "")])


def test_thinking_streams_apart_from_the_answer() -> None:
    steps([("<|channel|>analysis<|message|>Thinking...", "", "Thinking..."), ("<|end|>", "", ""),
           ("<|start|>assistant<|message|>Answer", "Answer", ""), ("<|end|>", "", "")])  # fmt: skip


def test_partial_tags_wait_until_complete() -> None:
    steps([("<|chan", "", ""), ("nel|>analysis<|mess", "", ""), ("age|>Deep ", "", "Deep "),
           ("thought<|end|>", "", "thought"),
           ("<|start|>assistant<|message|>Done<|end|>", "Done", "")])  # fmt: skip


def test_a_call_and_the_answer_after_it() -> None:
    text = ('<|channel|>commentary to=functions.get_weather<|message|>{"location":"San Francisco"}'
            "<|end|><|start|>assistant<|message|>The weather is sunny<|end|>")  # fmt: skip
    assert run([text]) == ("The weather is sunny", "", [
        ("get_weather", {"location": "San Francisco"})])  # fmt: skip


def test_a_call_whose_arguments_come_in_pieces_goes_out_whole_at_the_end() -> None:
    p = parser()
    assert p.add('<|channel|>commentary to=functions.calculate<|message|>{"expr', False) == (
        "", "", [])  # fmt: skip
    assert p.add('ession":"2+', False) == ("", "", [])
    content, thinking, calls = p.add('2"}', True)
    assert (content, thinking, calls_of(calls)) == ("", "", [("calculate", {"expression": "2+2"})])


@pytest.mark.parametrize(
    ("pieces", "content", "thinking"),
    [
        (["<|start|>assistant<|message|>Hello, ", "how can I help?", "<|end|>"],
         "Hello, how can I help?", ""),
        (["<|channel|>analysis<|message|>", "Let me think ", "about this problem...", "<|end|>",
          "<|start|>assistant<|message|>", "The answer ", "is 42", "<|end|>"],
         "The answer is 42", "Let me think about this problem..."),
        (["<|chan", "nel|>analy", "sis<|mess", "age|>Think", "ing deeply...<|end|>",
          "<|start|>assi", "stant<|message|>Result ", "computed<|e", "nd|>"],
         "Result computed", "Thinking deeply..."),
    ],
)  # fmt: skip
def test_streamed_chats(pieces: list[str], content: str, thinking: str) -> None:
    # TestChatHarmonyParserStreaming: the first case's own `<|start|>assistant` follows the
    # implied one, whose header it joins (an unnamed channel: the answer).
    assert run(pieces) == (content, thinking, [])


# ----- the prompt's names for the tools (TestFunctionConvertToValidChars, ...AndAdd)


@pytest.mark.parametrize(
    ("name", "identifier"),
    [
        ("get weather", "get_weather"),
        ("get-weather", "get_weather"),
        ("get.weather", "get_weather"),
        ("get weather!", "get_weather"),
        ("a🫠bc", "abc"),
        ("🫠", "unnamed"),
        ("123", "_123"),
        ("$", "$"),
        ("𝓸𝓵𝓵𝓪𝓶𝓪", "𝓸𝓵𝓵𝓪𝓶𝓪"),
        # Letters that are no letters (circled ones are symbols).
        ("ⓞⓛⓛⓐⓜⓐ123", "_123"),
    ],
)
def test_tool_names_become_identifiers(name: str, identifier: str) -> None:
    assert _identifier(name) == identifier


@pytest.mark.parametrize(
    ("names", "identifiers"),
    [
        (["get weather", "get weather"], ["get_weather", "get_weather_2"]),
        (["get weather", "get_weather", "get-weather"], ["get_weather", "get_weather_2",
                                                         "get_weather_3"]),
        (["get weather", "get_weather", "get-weather", "something-different"],
         ["get_weather", "get_weather_2", "get_weather_3", "something_different"]),
        (["a", "a", "b", "a", "a", "b", "a"], ["a", "a_2", "b", "a_3", "a_4", "b_2", "a_5"]),
        # gpt-oss's own tools keep their names.
        (["browser.open", "python", "not.a.built-in.function", "browser.not_a_real_built_in"],
         ["browser.open", "python", "not_a_built_in_function", "browser_not_a_real_built_in"]),
    ],
)  # fmt: skip
def test_names_that_come_out_the_same_are_numbered(
    names: list[str], identifiers: list[str]
) -> None:
    mapping = FunctionNames()
    assert [mapping.add(n) for n in names] == identifiers
    for name, identifier in zip(names, identifiers, strict=True):
        assert mapping.original(identifier) == name


def test_a_call_to_a_renamed_tool_has_the_requests_name() -> None:
    tools = [{"type": "function", "function": {"name": "get weather"}},
             {"type": "function", "function": {"name": "get-weather"}}]  # fmt: skip
    renamed = parser(tools).prompt_tools(tools)
    assert [t["function"]["name"] for t in renamed] == ["get_weather", "get_weather_2"]
    text = '<|channel|>commentary to=functions.get_weather_2 <|constrain|>json<|message|>{"a":1}'
    assert run([text], tools) == ("", "", [("get-weather", {"a": 1})])
    # A name the request did not give stays as the model wrote it.
    text = "<|channel|>commentary to=functions.nowhere<|message|>{}"
    assert run([text], tools) == ("", "", [("nowhere", {})])


def test_builtin_tools_keep_their_names_in_calls() -> None:
    tools = [{"type": "function", "function": {"name": "browser.search"}}]
    text = '<|channel|>analysis to=browser.search<|message|>{"query":"trio"}'
    assert run([text], tools) == ("", "", [("browser.search", {"query": "trio"})])


# ----- a chat that ends with the assistant's own words (Ollama's prefill)


def test_a_prefilled_answer_goes_on_as_the_answer() -> None:
    last = Message(role="assistant", content="The answer is")
    assert run([" 42.<|end|>"], last=last) == (" 42.", "", [])


def test_prefilled_thinking_goes_on_as_thinking() -> None:
    last = Message(role="assistant", thinking="Let me see")
    text = ", 6 times 7.<|end|><|start|>assistant<|channel|>final<|message|>42"
    assert run([text], last=last) == ("42", ", 6 times 7.", [])


def test_a_last_message_of_another_role_starts_a_new_message() -> None:
    last = Message(role="user", content="hi")
    assert run(["<|channel|>final<|message|>Hello"], last=last) == ("Hello", "", [])


# ----- calls Ollama cannot read


@pytest.mark.parametrize(
    "arguments", ['{"location": ', "not json", "", "[1, 2]", '{"a": NaN}', '{"a": 1}{"b": 2}']
)
def test_arguments_that_are_no_json_object_are_ollamas_error(arguments: str) -> None:
    text = "<|channel|>commentary to=functions.get_weather<|message|>" + arguments
    with pytest.raises(ParseError, match=r"^error parsing tool call: raw='"):
        run([text])


def test_two_calls_in_one_output_are_one_body_as_in_ollama() -> None:
    # The runner stops at a call's end; if it did not, Ollama gathers both bodies under the
    # last name, which is no JSON.
    text = (
        '<|channel|>commentary to=functions.get_weather<|message|>{"location":"Oslo"}<|end|>'
        "<|start|>assistant<|channel|>commentary to=functions.calculate<|message|>{}"
    )
    with pytest.raises(ParseError):
        run([text])


# ----- any split reads as the whole

SPLIT = [
    "<|channel|>analysis<|message|>The user wants the weather in Oslo.<|end|><|start|>assistant"
    "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
    '{"location": "Oslo <|end|>?"}',
    "<|channel|>analysis<|message|>Easy.<|end|>junk<|start|>assistant<|channel|>final"
    "<|message|>It is <|e sunny|> in Oslo.<|end|>",
    "<|message|>Hi <|start|> there<|end|>",
]


def test_a_call_arguments_may_hold_the_end_tag_only_when_unsplit() -> None:
    # `<|end|>` ends a body wherever it stands, as in Ollama: inside the JSON string too.
    with pytest.raises(ParseError):
        run([SPLIT[0]])


@pytest.mark.parametrize("text", [SPLIT[0].replace(" <|end|>", ""), *SPLIT[1:]])
def test_any_split_reads_as_the_whole(text: str) -> None:
    whole = run([text])
    rng = random.Random(text)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, min(40, len(text) - 1))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert run(pieces) == whole


# ----- hostile output: a megabyte costs its length, and only a ParseError may come of it

MEGABYTE = 1 << 20


def hostile() -> dict[str, list[str]]:
    rng = random.Random(29)
    tags = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|", "|>",
            "to=", "functions.", "analysis", "commentary", "final", "{", "}", '"', " "]  # fmt: skip
    soup = "".join(rng.choice(tags) for _ in range(MEGABYTE // 4))
    return {
        # A header that never ends, a few characters a piece (as tokens come).
        "unclosed header": ["<|channel|>analysis to=functions.x"] + ["a b "] * (MEGABYTE // 4),
        # Thinking that never ends, with near-end tags throughout.
        "unclosed body": ["<|channel|>analysis<|message|>"] + ["<|en"] * (MEGABYTE // 4),
        # Text between messages that never starts one.
        "no start": ["<|end|>"] + ["<|star"] * (MEGABYTE // 6),
        # Channels inside channels.
        "nested channels": [
            "<|channel|>analysis<|channel|>commentary to=functions.x<|message|>"
            "{<|channel|>final<|end|><|start|>"
        ]
        * 12_000,
        # A megabyte of arguments, in small pieces.
        "huge arguments": ['<|channel|>commentary to=functions.calculate<|message|>{"expression":"']
        + ["1+"] * (MEGABYTE // 2)
        + ['1"}'],
        "tag soup": [soup[i : i + 7] for i in range(0, len(soup), 7)],
    }


@pytest.mark.parametrize("case", list(hostile()))
def test_a_megabyte_of_hostile_output_costs_its_length(case: str) -> None:
    pieces = hostile()[case]
    assert sum(map(len, pieces)) >= MEGABYTE
    costs_its_length(lambda part: read_all(parser(), part), pieces, case)


def test_huge_arguments_are_read() -> None:
    pieces = hostile()["huge arguments"]
    assert run(pieces)[2] == [("calculate", {"expression": "1+" * (MEGABYTE // 2) + "1"})]


# ----- chosen by the family, as Ollama chooses (`shouldUseHarmony`)

HARMONY_TEMPLATE = "<|start|>system<|message|>{{ .System }}<|end|>{{ range .Messages }}{{ end }}"


def model(**fields: Any) -> ModelPrompt:
    return ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                       has_projector=False, **fields)  # fmt: skip


def test_a_gpt_oss_model_whose_template_writes_harmony_is_read_by_harmony() -> None:
    assert _uses_harmony("gptoss", HARMONY_TEMPLATE) and _uses_harmony("gpt-oss", HARMONY_TEMPLATE)
    assert not _uses_harmony("llama", HARMONY_TEMPLATE)
    assert not _uses_harmony("gptoss", "{{ .Prompt }}") and not _uses_harmony("gptoss", None)
    gpt_oss = model(family="gptoss", harmony=True)
    assert gpt_oss.builtin_parser_name == "harmony"
    assert isinstance(gpt_oss.output_parser("", think=True).builtin, HarmonyParser)
    assert "thinking" in gpt_oss.capabilities
    # Its PARSER, when it has one, wins.
    assert model(family="gptoss", harmony=True, parser="qwen3").builtin_parser_name == "qwen3"


def test_max_asks_a_gpt_oss_model_for_high() -> None:
    # Harmony's reasoning levels stop at high; Ollama maps by the family, not by PARSER.
    assert model(family="gptoss", harmony=True).request_think("max") == "high"
    assert model(family="gptoss", harmony=True).request_think("low") == "low"
    assert model(parser="harmony").request_think("max") == "max"


def test_a_format_restart_closes_harmony_thinking() -> None:
    final = "<|end|><|start|>assistant<|channel|>final<|message|>"
    assert model(family="gptoss", harmony=True).format_restart == final
    assert model(parser="harmony").format_restart == final
    assert model(parser="qwen3").format_restart == ""
