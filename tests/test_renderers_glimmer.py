"""Ollama's `glimmer` renderer (issue 31): the prompts of Ollama's glimmer_reference_test.go
and glimmer_test.go, each exact, and its tool loop with the parser."""

from __future__ import annotations

from typing import Any

import pytest

from trio_ollama.parsers import builtin_parser
from trio_ollama.renderers import builtin_renderer
from trio_ollama.renderers.glimmer import GlimmerRenderer
from trio_ollama.templates import Message, ToolCall, ToolCallFunction

DATE = "2026-07-29"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "units": {"type": "string"}}}}}  # fmt: skip
DEFAULT_SYSTEM = """You are a helpful AI assistant.
Knowledge cutoff: 2026-01-04.
Current date: 2026-07-29.

Reasoning strength: high.

# Valid recipients: "self", "user"."""
WEATHER_DEFINITIONS = """In this environment you have access to a set of tools you can use to \
answer the user's question.

You can invoke a function by writing a "<atem:function_calls>" block like the following:
<atem:function_calls>
<atem:invoke name="$FUNCTION_NAME">
<atem:parameter name="$PARAMETER_NAME">$PARAMETER_VALUE</atem:parameter>
...
</atem:invoke>
</atem:function_calls>

String and scalar parameters should be specified as is, while lists and objects should use \
JSON format. Note that spaces for string values are not stripped. The output is not expected \
to be valid XML and is parsed with regular expressions.
Here are the functions available in JSONSchema format:
// Tool metadata
{"name": "get_weather", "description": ""}
// Function schemas
{"name": "get_weather", "description": "Get the weather", "parameters": {"type": "object", \
"required": ["city"], "properties": {"city": {"type": "string"}, "units": {"type": "string"}}}}

Here's an example of how to call a function in the tool set:
(If the tool namespace is not specified, invoke the function directly as \
`example_function_name` rather than `example_tool_name.example_function_name`)

to=example_tool_name.example_function_name

<atem:function_calls>
<atem:invoke name="example_tool_name.example_function_name">
<atem:parameter name="example_parameter_1">value_1</atem:parameter>
<atem:parameter name="example_parameter_2">This is the value for the second parameter
that can span
"multiple" lines
</atem:parameter>
</atem:invoke>
</atem:function_calls>"""
WEATHER_ATEM = """<atem:function_calls>
<atem:invoke name="get_weather">
<atem:parameter name="city">SF</atem:parameter>
<atem:parameter name="units">fahrenheit</atem:parameter>
</atem:invoke>
</atem:function_calls>"""


def prompt(*parts: str) -> str:
    return "<|begin_of_text|>" + "".join(parts) + "<|start|>assistant"


def turn(header: str, content: str, end: str = "<|eot|>") -> str:
    return f"<|start|>{header}<|message|>{content}{end}"


def msg(role: str, content: str = "", **kw: Any) -> Message:
    return Message(role=role, content=content, **kw)


def call(name: str, id: str = "", **args: Any) -> ToolCall:
    return ToolCall(id=id, function=ToolCallFunction(name=name, arguments=args))


WEATHER_CALL = call("get_weather", city="SF", units="fahrenheit")

# (name, messages, tools, think, prompt): TestGlimmerRendererMatchesJinja2Reference and
# TestGlimmerRendererKnownJinja2DifferenceThinkingContinuation.
CASES: list[tuple[str, list[Message], Any, Any, str]] = [
    ("default system", [msg("user", "Hello")], None, None,
     prompt(turn("system", DEFAULT_SYSTEM), turn("user", "Hello"))),
    # Ollama's case writes the image as Glimmer's patch token, which its server never asks for
    # (it sets RenderImgTags): here the image is the runner's tag, as the server sends it.
    ("explicit system image thinking and answer",
     [msg("system", "Be concise."), msg("user", "Read this.", images=(b"\x01",)),
      msg("assistant", "It says hello.", thinking="I should inspect it.")], None, None,
     prompt(turn("system", 'Be concise.\n\nReasoning strength: high.\n\n# Valid recipients: '
                 '"self", "user".'),
            turn("user", "[img-0] Read this."),
            turn("assistant to=self", "I should inspect it.", "<|eom|>"),
            turn("assistant to=user", "It says hello."))),
    ("explicit system reasoning effort is normalized and not duplicated",
     [msg("system", "You are direct.\nReasoning effort: medium."), msg("user", "Hello")], None,
     None, prompt(turn("system", 'You are direct.\nReasoning strength: medium.\n\n'
                       '# Valid recipients: "self", "user".'), turn("user", "Hello"))),
    ("explicit system reasoning strength is not duplicated",
     [msg("system", "You are direct.\nReasoning strength: low."), msg("user", "Hello")], None,
     "high", prompt(turn("system", 'You are direct.\nReasoning strength: low.\n\n'
                         '# Valid recipients: "self", "user".'), turn("user", "Hello"))),
    ("tool call and result",
     [msg("user", "Weather?"),
      msg("assistant", thinking="Need current data.",
          tool_calls=(call("get_weather", "call_weather", city="SF", units="fahrenheit"),)),
      msg("tool", '{"temp":65}', tool_call_id="call_weather"),
      msg("assistant", "It is 65F.")], [WEATHER], None,
     prompt(turn("system", "You are a helpful AI assistant.\nKnowledge cutoff: 2026-01-04.\n"
                 "Current date: 2026-07-29.\n\nReasoning strength: high.\n\n"
                 + WEATHER_DEFINITIONS
                 + '\n\n# Valid recipients: "self", "get_weather.*", "user".'),
            turn("user", "Weather?"),
            turn("assistant to=self", "Need current data.", "<|eom|>"),
            turn("assistant to=get_weather", WEATHER_ATEM),
            turn("tool get_weather",
                 '<tool_output name="get_weather">\n{"temp":65}\n</tool_output>'),
            turn("assistant to=user", "It is 65F."))),
    ("adjacent assistant tool calls use message boundary",
     [msg("user", "Run twice."), msg("assistant", tool_calls=(WEATHER_CALL,)),
      msg("assistant", tool_calls=(WEATHER_CALL,)), msg("user", "Continue.")], None, None,
     prompt(turn("system", DEFAULT_SYSTEM), turn("user", "Run twice."),
            turn("assistant to=get_weather", WEATHER_ATEM, "<|eom|>"),
            turn("assistant to=get_weather", WEATHER_ATEM), turn("user", "Continue."))),
    ("explicit reasoning level", [msg("user", "Solve.")], None, "low",
     prompt(turn("system", DEFAULT_SYSTEM.replace("high", "low", 1)), turn("user", "Solve."))),
    ("thinking disabled", [msg("user", "Answer directly.")], None, False,
     prompt(turn("system", DEFAULT_SYSTEM.replace("high", "none", 1)),
            turn("user", "Answer directly."))),
    ("thinking continuation",
     [msg("user", "Solve"), msg("assistant", thinking="Private reasoning.")], None, None,
     "<|begin_of_text|>" + turn("system", DEFAULT_SYSTEM) + turn("user", "Solve")
     + turn("assistant to=self", "Private reasoning.", "<|eom|>") + "<|start|>assistant"),
    # TestGlimmerRenderImages' case with the runner's tags.
    ("runner tags across turns",
     [msg("user", "First.", images=(b"\x01",)), msg("assistant", "Done."),
      msg("user", "Compare.", images=(b"\x02", b"\x03"))], None, None,
     prompt(turn("system", DEFAULT_SYSTEM), turn("user", "[img-0] First."),
            turn("assistant to=user", "Done."), turn("user", "[img-1][img-2] Compare."))),
]  # fmt: skip


@pytest.mark.parametrize(("name", "messages", "tools", "think", "expected"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_prompt_is_ollamas(
    name: str, messages: list[Message], tools: Any, think: Any, expected: str
) -> None:
    assert GlimmerRenderer(today=DATE).render(messages, tools, think) == expected


def test_atem_values() -> None:
    """TestGlimmerRenderATEMValues: text as it is, scalars as Go prints them, arrays and
    objects as spaced JSON (not HTML-escaped, keys sorted as Go's maps)."""
    run = call("tools.run", text="keep  spaces", count=3, enabled=True, fallback=None,
               items=["one", "two"], config={"mode": "fast", "a": "<b>"})  # fmt: skip
    got = GlimmerRenderer(today=DATE).render(
        [msg("user", "Run it."), msg("assistant", tool_calls=(run,))], None, None
    )
    expected = turn(
        "assistant to=tools.run",
        """<atem:function_calls>
<atem:invoke name="tools.run">
<atem:parameter name="text">keep  spaces</atem:parameter>
<atem:parameter name="count">3</atem:parameter>
<atem:parameter name="enabled">true</atem:parameter>
<atem:parameter name="fallback">null</atem:parameter>
<atem:parameter name="items">["one", "two"]</atem:parameter>
<atem:parameter name="config">{"a": "<b>", "mode": "fast"}</atem:parameter>
</atem:invoke>
</atem:function_calls>""",
    )
    assert expected in got


@pytest.mark.parametrize(("think", "line"), [(None, "high"), (True, "high"), (False, "none"),
                                             ("medium", "medium"), ("max", "max")])  # fmt: skip
def test_reasoning_strength(think: Any, line: str) -> None:
    got = GlimmerRenderer(today=DATE).render([msg("user", "Hello")], None, think)
    assert f"Reasoning strength: {line}." in got


def test_tool_result_names() -> None:
    """TestGlimmerRenderToolResultName: a result's tool found by its call's id, else the id."""
    got = GlimmerRenderer(today=DATE).render(
        [msg("assistant", tool_calls=(call("get_weather", "call_1"),)),
         msg("tool", '{"temp":65}', tool_call_id="call_1"),
         msg("tool", "not found", tool_call_id="missing"),
         msg("tool", "orphan"), msg("tool", "README", tool_name="filesystem.read")],
        None, None,
    )  # fmt: skip
    for part in (
        turn("tool get_weather", '<tool_output name="get_weather">\n{"temp":65}\n</tool_output>'),
        turn("tool missing", '<tool_output name="missing">\nnot found\n</tool_output>'),
        turn("tool ", '<tool_output name="">\norphan\n</tool_output>'),
        turn("tool filesystem.read",
             '<tool_output name="filesystem.read">\nREADME\n</tool_output>'),
    ):  # fmt: skip
        assert part in got


def test_namespaces_and_system_turns() -> None:
    """Dotted tools share their namespace among the recipients; every system message is a
    system turn with the tools; a role Glimmer has no turn for is left out."""
    read = {"type": "function", "function": {"name": "filesystem.read", "description": "Read",
            "parameters": {"type": "object",
                           "properties": {"path": {"type": "string"}}}}}  # fmt: skip
    write = {"type": "function", "function": {"name": "filesystem.write",
             "parameters": {"type": "object"}}}  # fmt: skip
    got = GlimmerRenderer(today=DATE).render(
        [msg("developer", "ignored"), msg("user", "One"), msg("system", "First policy."),
         msg("system", "Second policy.")], [read, write, WEATHER], None)  # fmt: skip
    assert "ignored" not in got
    assert got.count('# Valid recipients: "self", "filesystem.*", "get_weather.*", "user".') == 2
    assert got.count('{"name": "filesystem", "description": ""}\n{"name": "get_weather"') == 2
    assert '"parameters": {"type": "object", "properties": null}}' in got


def test_tool_loop_round_trip() -> None:
    """TestGlimmerParserRendererToolLoopRoundTrip: what the parser reads back from each turn
    renders into a prompt that ends where the model goes on."""
    tools = [{"type": "function", "function": {"name": name, "description": desc,
              "parameters": {"type": "object", "required": [key],
                             "properties": {key: {"type": kind}}}}}
             for name, desc, key, kind in (("issue", "Read an issue.", "number", "integer"),
                                           ("read", "Read a file.", "path", "string"))]  # fmt: skip
    messages = [msg("user", "Investigate issue 1736 and inspect server/download.go.")]
    renderer = builtin_renderer("glimmer")
    assert renderer is not None
    turns = [
        (" to=self<|message|>I need the issue details.<|eom|><|start|>assistant to=issue"
         '<|message|><atem:function_calls>\n<atem:invoke name="issue">\n<atem:parameter '
         'name="number">1736</atem:parameter>\n</atem:invoke>\n</atem:function_calls><|eot|>'),
        (" to=self<|message|>I have enough evidence.<|eom|><|start|>assistant to=user<|message|>"
         "The proposed fix is plausible.<|eot|>"),
    ]  # fmt: skip
    for i, output in enumerate(turns):
        assert renderer.render(messages, tools, None).endswith("<|start|>assistant")
        parser = builtin_parser("glimmer")
        assert parser is not None
        parser.init(tools, None)
        content, thinking, calls = parser.add(output, True)
        calls = [ToolCall(id=f"call_{i}", function=c.function) for c in calls]
        messages.append(msg("assistant", content, thinking=thinking, tool_calls=tuple(calls)))
        if calls:
            messages.append(msg("tool", "Issue 1736 links the fix.", tool_call_id=f"call_{i}"))
    got = GlimmerRenderer(today=DATE).render(messages, tools, None)
    assert turn("assistant to=issue", '<atem:function_calls>\n<atem:invoke name="issue">\n'
                '<atem:parameter name="number">1736</atem:parameter>\n</atem:invoke>\n'
                "</atem:function_calls>") in got  # fmt: skip
    assert got.endswith(turn("tool issue", '<tool_output name="issue">\nIssue 1736 links the fix.'
                             "\n</tool_output>")
                        + turn("assistant to=self", "I have enough evidence.", "<|eom|>")
                        + turn("assistant to=user", "The proposed fix is plausible.")
                        + "<|start|>assistant")  # fmt: skip


def test_the_default_date_is_today() -> None:
    import datetime

    got = GlimmerRenderer().render([msg("user", "Hi")], None, None)
    assert f"Current date: {datetime.date.today().isoformat()}." in got
