"""Ollama's `laguna` and `poolside-v1` renderers: the exact prompt of each of Ollama's cases
(its `laguna_test.go`, checked there against Poolside's chat templates v2 and v8)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.parser_cases import messages
from trio_ollama.renderers import builtin_renderer
from trio_ollama.renderers.laguna import DEFAULT_SYSTEM, LagunaRenderer, PoolsideV1Renderer


def tool(name: str, description: str, **props: tuple[str, str]) -> dict[str, Any]:
    properties = {k: {"type": kind, "description": d} for k, (kind, d) in props.items()}
    parameters = {"type": "object", "required": list(props), "properties": properties}
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


WEATHER = [tool("get_weather", "Get weather", location=("string", "City"))]
MATH = [tool("add", "Add numbers", a=("number", "First number"), b=("number", "Second number"))]
WEATHER_JSON = (
    '{"type": "function", "function": {"name": "get_weather", "description": "Get '
    'weather", "parameters": {"type": "object", "required": ["location"], '
    '"properties": {"location": {"type": "string", "description": "City"}}}}}'
)
MATH_JSON = ('{"type": "function", "function": {"name": "add", "description": "Add numbers", '
             '"parameters": {"type": "object", "required": ["a", "b"], "properties": {"a": '
             '{"type": "number", "description": "First number"}, "b": {"type": "number", '
             '"description": "Second number"}}}}}')  # fmt: skip


def user(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def system(content: str) -> dict[str, Any]:
    return {"role": "system", "content": content}


def assistant(
    content: str = "", thinking: str = "", *calls: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    tool_calls = [{"function": {"name": n, "arguments": a}} for n, a in calls]
    return {"role": "assistant", "content": content, "thinking": thinking,
            "tool_calls": tool_calls}  # fmt: skip


HISTORY = [user("Add these."),
           assistant("\nCalling the tool.\n", "Need addition.", ("add", {"a": 2, "b": 3})),
           {"role": "tool", "content": "5"}, user("Thanks")]  # fmt: skip
MIXED = [user("Do calls"),
         assistant("", "", ("echo", {"text": "hello", "count": 2}),
                   ("configure", {"flag": True, "options": {"mode": "fast"}})),
         user("Done?")]  # fmt: skip

V2_HEADER = f"〈|EOS|〉<system>\n\n{DEFAULT_SYSTEM}\n</system>\n"
V2_TOOLS = (
    "### Tools\n\nYou may call functions to assist with the user query.\n"
    "All available function signatures are listed below:\n<available_tools>\n"
)
V2_CALLS = (
    "For each function call, return an unescaped XML-like object with function name and "
    "arguments within '<tool_call>' and '</tool_call>' tags, like here:\n"
)
V2_EXAMPLE = ("<tool_call>function-name\n<arg_key>argument-key</arg_key>\n"
              "<arg_value>value-of-argument-key</arg_value>\n</tool_call>")  # fmt: skip

# TestLagunaRendererReferenceFlowCoverage (and the prefill of TestLagunaRendererAssistantPrefill)
V2 = [
    ("empty_messages", [], None, None, V2_HEADER + "<assistant>\n</think>"),
    ("user_only_default", [user("Hello")], None, None,
     V2_HEADER + "<user>\nHello\n</user>\n<assistant>\n</think>"),
    ("user_only_think", [user("Hello")], None, True,
     V2_HEADER + "<user>\nHello\n</user>\n<assistant>\n<think>"),
    ("user_only_nothink", [user("Hello")], None, False,
     V2_HEADER + "<user>\nHello\n</user>\n<assistant>\n</think>"),
    ("first_system_is_header", [system("Stay concise.\n\n"), user("Hi")], None, None,
     "〈|EOS|〉<system>\n\nStay concise.\n</system>\n<user>\nHi\n</user>\n<assistant>\n</think>"),
    ("empty_first_system_opts_out_of_header", [system(""), user("Hi")], None, None,
     "〈|EOS|〉<user>\nHi\n</user>\n<assistant>\n</think>"),
    ("additional_system", [system("Primary."), user("Hi"), system("Secondary.")], None, None,
     "〈|EOS|〉<system>\n\nPrimary.\n</system>\n<user>\nHi\n</user>\n"
     "<system>\nSecondary.\n</system>\n<assistant>\n</think>"),
    ("empty_first_system_with_tools", [system(""), user("Weather?")], WEATHER, None,
     "〈|EOS|〉<system>\n\n\n" + V2_TOOLS + WEATHER_JSON + "\n</available_tools>\n\n" + V2_CALLS
     + V2_EXAMPLE + "\n</system>\n<user>\nWeather?\n</user>\n<assistant>\n</think>"),
    ("tools_in_header", [system("Stay concise."), user("Weather?")], WEATHER, True,
     "〈|EOS|〉<system>\n\nStay concise.\n\n" + V2_TOOLS + WEATHER_JSON
     + "\n</available_tools>\n\nWrap your thinking in '<think>', '</think>' tags, followed by a "
     "function call. " + V2_CALLS + "<think> your thoughts here </think>\n" + V2_EXAMPLE
     + "\n</system>\n<user>\nWeather?\n</user>\n<assistant>\n<think>"),
    ("tools_default", [user("Weather?")], WEATHER, None,
     f"〈|EOS|〉<system>\n\n{DEFAULT_SYSTEM}\n\n" + V2_TOOLS + WEATHER_JSON
     + "\n</available_tools>\n\n" + V2_CALLS + V2_EXAMPLE
     + "\n</system>\n<user>\nWeather?\n</user>\n<assistant>\n</think>"),
    ("multiple_tools_in_header", [user("Add then report weather")], WEATHER + MATH, None,
     f"〈|EOS|〉<system>\n\n{DEFAULT_SYSTEM}\n\n" + V2_TOOLS + WEATHER_JSON + "\n" + MATH_JSON
     + "\n</available_tools>\n\n" + V2_CALLS + V2_EXAMPLE
     + "\n</system>\n<user>\nAdd then report weather\n</user>\n<assistant>\n</think>"),
    ("assistant_history", HISTORY, None, True,
     V2_HEADER + "<user>\nAdd these.\n</user>\n<assistant>\n<think>\nNeed addition.\n</think>\n"
     "Calling the tool.\n<tool_call>add\n<arg_key>a</arg_key>\n<arg_value>2</arg_value>\n"
     "<arg_key>b</arg_key>\n<arg_value>3</arg_value>\n</tool_call>\n</assistant>\n"
     "<tool_response>\n5\n</tool_response>\n<user>\nThanks\n</user>\n<assistant>\n<think>"),
    ("assistant_extracts_thinking_from_content",
     [user("Explain"), assistant("<think>\nPlan\n</think>\nAnswer\n\n"), user("Next")], None, True,
     V2_HEADER + "<user>\nExplain\n</user>\n<assistant>\n<think>\nPlan\n</think>\nAnswer\n"
     "</assistant>\n<user>\nNext\n</user>\n<assistant>\n<think>"),
    ("assistant_thinking_metadata_overrides_content_tags",
     [user("Explain"), assistant("<think>Ignore this</think>\nAnswer", "Use metadata."),
      user("Next")], None, None,
     V2_HEADER + "<user>\nExplain\n</user>\n<assistant>\n<think>\nUse metadata.\n</think>\n"
     "Answer\n</assistant>\n<user>\nNext\n</user>\n<assistant>\n</think>"),
    ("assistant_whitespace_content_only", [user("Continue"), assistant(" \n\t "), user("Next")],
     None, None,
     V2_HEADER + "<user>\nContinue\n</user>\n<assistant>\n</think>\n</assistant>\n"
     "<user>\nNext\n</user>\n<assistant>\n</think>"),
    ("assistant_multiple_tool_calls_mixed_args", MIXED, None, None,
     V2_HEADER + "<user>\nDo calls\n</user>\n<assistant>\n</think>\n<tool_call>echo\n"
     "<arg_key>text</arg_key>\n<arg_value>hello</arg_value>\n<arg_key>count</arg_key>\n"
     "<arg_value>2</arg_value>\n</tool_call>\n<tool_call>configure\n<arg_key>flag</arg_key>\n"
     '<arg_value>true</arg_value>\n<arg_key>options</arg_key>\n<arg_value>{"mode": "fast"}'
     "</arg_value>\n</tool_call>\n</assistant>\n<user>\nDone?\n</user>\n<assistant>\n</think>"),
    ("AssistantPrefill", [user("Complete this"), assistant("Partial")], None, None,
     V2_HEADER + "<user>\nComplete this\n</user>\n<assistant>\n</think>\nPartial\n"),
]  # fmt: skip

V8_HEADER = f"〈|EOS|〉<system>{DEFAULT_SYSTEM}</system>\n"
V8_TOOLS = V2_TOOLS

# TestLagunaV8RendererReferenceFlowCoverage
V8 = [
    ("empty_messages", [], None, None, V8_HEADER + "<assistant></think>"),
    ("user_only_default", [user("Hello")], None, None,
     V8_HEADER + "<user>Hello</user>\n<assistant></think>"),
    ("user_only_think", [user("Hello")], None, True,
     V8_HEADER + "<user>Hello</user>\n<assistant><think>"),
    ("user_only_nothink", [user("Hello")], None, False,
     V8_HEADER + "<user>Hello</user>\n<assistant></think>"),
    ("first_system_is_header", [system("Stay concise.\n\n"), user("Hi")], None, None,
     "〈|EOS|〉<system>Stay concise.</system>\n<user>Hi</user>\n<assistant></think>"),
    ("empty_first_system_opts_out_of_header", [system(""), user("Hi")], None, None,
     "〈|EOS|〉<user>Hi</user>\n<assistant></think>"),
    ("empty_first_system_with_tools", [system(""), user("Weather?")], WEATHER, None,
     "〈|EOS|〉<system>" + V8_TOOLS + WEATHER_JSON + "\n</available_tools></system>\n"
     "<user>Weather?</user>\n<assistant></think>"),
    ("empty_first_system_thinking_enabled", [system(""), user("Hi")], None, True,
     "〈|EOS|〉<system></system>\n<user>Hi</user>\n<assistant><think>"),
    ("additional_system", [system("Primary."), user("Hi"), system("Secondary.")], None, None,
     "〈|EOS|〉<system>Primary.</system>\n<user>Hi</user>\n<system>Secondary.</system>\n"
     "<assistant></think>"),
    ("tools_in_header", [system("Stay concise."), user("Weather?")], WEATHER, True,
     "〈|EOS|〉<system>Stay concise.\n\n" + V8_TOOLS + WEATHER_JSON
     + "\n</available_tools></system>\n<user>Weather?</user>\n<assistant><think>"),
    ("tools_default", [user("Weather?")], WEATHER, None,
     f"〈|EOS|〉<system>{DEFAULT_SYSTEM}\n\n" + V8_TOOLS + WEATHER_JSON
     + "\n</available_tools></system>\n<user>Weather?</user>\n<assistant></think>"),
    ("multiple_tools_in_header", [user("Add then report weather")], WEATHER + MATH, None,
     f"〈|EOS|〉<system>{DEFAULT_SYSTEM}\n\n" + V8_TOOLS + WEATHER_JSON + "\n" + MATH_JSON
     + "\n</available_tools></system>\n<user>Add then report weather</user>\n"
     "<assistant></think>"),
    ("assistant_history", HISTORY, None, True,
     V8_HEADER + "<user>Add these.</user>\n<assistant><think>Need addition.</think>\n"
     "Calling the tool.\n<tool_call>add<arg_key>a</arg_key><arg_value>2</arg_value>"
     "<arg_key>b</arg_key><arg_value>3</arg_value></tool_call></assistant>\n"
     "<tool_response>5</tool_response>\n<user>Thanks</user>\n<assistant><think>"),
    ("assistant_reasoning_ignored_when_thinking_disabled",
     [user("Explain"), assistant("Answer", "Hidden plan."), user("Next")], None, None,
     V8_HEADER + "<user>Explain</user>\n<assistant></think>Answer</assistant>\n"
     "<user>Next</user>\n<assistant></think>"),
    ("assistant_empty_reasoning_when_thinking_enabled",
     [user("Explain"), assistant("Answer"), user("Next")], None, True,
     V8_HEADER + "<user>Explain</user>\n<assistant><think></think>Answer</assistant>\n"
     "<user>Next</user>\n<assistant><think>"),
    ("assistant_preserves_content_whitespace",
     [user("Explain"), assistant("\nAnswer\n"), user("Next")], None, None,
     V8_HEADER + "<user>Explain</user>\n<assistant></think>\nAnswer\n</assistant>\n"
     "<user>Next</user>\n<assistant></think>"),
    ("assistant_multiple_tool_calls_mixed_args", MIXED, None, None,
     V8_HEADER + "<user>Do calls</user>\n<assistant></think><tool_call>echo<arg_key>text"
     "</arg_key><arg_value>hello</arg_value><arg_key>count</arg_key><arg_value>2</arg_value>"
     "</tool_call><tool_call>configure<arg_key>flag</arg_key><arg_value>true</arg_value>"
     '<arg_key>options</arg_key><arg_value>{"mode": "fast"}</arg_value></tool_call>'
     "</assistant>\n<user>Done?</user>\n<assistant></think>"),
    ("final_assistant_closes_then_generation_prompt",
     [user("Complete this"), assistant("Partial")], None, None,
     V8_HEADER + "<user>Complete this</user>\n<assistant></think>Partial</assistant>\n"
     "<assistant></think>"),
]  # fmt: skip


def test_registered_under_ollamas_names() -> None:
    assert isinstance(builtin_renderer("laguna"), LagunaRenderer)
    assert isinstance(builtin_renderer("poolside-v1"), PoolsideV1Renderer)


@pytest.mark.parametrize(("name", "msgs", "tools", "think", "want"), V2, ids=[c[0] for c in V2])
def test_laguna_prompt_is_ollamas(name: str, msgs: list[dict[str, Any]],
                                  tools: list[dict[str, Any]] | None, think: bool | None,
                                  want: str) -> None:  # fmt: skip
    assert LagunaRenderer().render(messages(msgs), tools, think) == want


@pytest.mark.parametrize(("name", "msgs", "tools", "think", "want"), V8, ids=[c[0] for c in V8])
def test_poolside_v1_prompt_is_ollamas(name: str, msgs: list[dict[str, Any]],
                                       tools: list[dict[str, Any]] | None, think: bool | None,
                                       want: str) -> None:  # fmt: skip
    assert PoolsideV1Renderer().render(messages(msgs), tools, think) == want


def test_think_levels_think() -> None:
    """A level ("high", ...) is thinking on, as Ollama's `ThinkValue.Bool` has it."""
    msgs = messages([user("Hello")])
    assert LagunaRenderer().render(msgs, None, "high").endswith("<assistant>\n<think>")
    assert PoolsideV1Renderer().render(msgs, None, "low").endswith("<assistant><think>")
