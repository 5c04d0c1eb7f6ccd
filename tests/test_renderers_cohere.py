"""Ollama's `cohere` renderer: the exact prompt (or, where Ollama's test checks a part, that
part) of each of Ollama's cases (its `cohere_test.go`, checked there against North-Mini-Code
1.0's chat template)."""

from __future__ import annotations

from typing import Any

from tests.parser_cases import messages
from trio_ollama.renderers import builtin_renderer
from trio_ollama.renderers.cohere import CohereRenderer

NO_TOOLS = ("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TEXT|># Available Tools\n```json\n"
            "[\n\n\n\n]\n```<|END_TEXT|><|END_OF_TURN_TOKEN|>")  # fmt: skip
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get weather",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}}}}}  # fmt: skip


def render(msgs: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
           think: bool | None = None) -> str:  # fmt: skip
    return CohereRenderer().render(messages(msgs), tools, think)


def test_registered_under_ollamas_name() -> None:
    assert isinstance(builtin_renderer("cohere"), CohereRenderer)


def test_user_only() -> None:
    assert render([{"role": "user", "content": "USERMSG"}]) == (
        NO_TOOLS + "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|START_TEXT|>USERMSG<|END_TEXT|>"
        "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|>"
    )


def test_system_history_and_thinking() -> None:
    got = render([{"role": "system", "content": "DEVPREAMBLE"},
                  {"role": "user", "content": "Q1"},
                  {"role": "assistant", "content": "A1", "thinking": "THINK1"},
                  {"role": "user", "content": "Q2"}])  # fmt: skip
    assert got == (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TEXT|>DEVPREAMBLE\n\n\n\n# Available "
        "Tools\n```json\n[\n\n\n\n]\n```<|END_TEXT|><|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|START_TEXT|>Q1<|END_TEXT|><|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|>THINK1<|END_THINKING|>"
        "<|START_TEXT|>A1<|END_TEXT|><|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|START_TEXT|>Q2<|END_TEXT|><|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|>"
    )


def test_reasoning_off() -> None:
    assert render([{"role": "user", "content": "Q"}], think=False).endswith(
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|><|END_THINKING|>"
    )


def test_tool_flow() -> None:
    got = render([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "thinking": "I should call the tool",
         "tool_calls": [{"id": "call_x",
                         "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_x", "content": "15C sunny"},
        {"role": "user", "content": "thanks"},
    ], [WEATHER])  # fmt: skip
    assert got == (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TEXT|># Available Tools\n```json\n[\n\n"
        '    {"name": "get_weather", "description": "Get weather", "parameters": {"type": '
        '"object", "required": ["city"], "properties": {"city": {"type": "string"}}}, '
        '"responses": null}\n\n\n]\n```<|END_TEXT|><|END_OF_TURN_TOKEN|>'
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|START_TEXT|>weather in Paris?<|END_TEXT|>"
        "<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n            \n                "
        "<|START_THINKING|>I should call the tool<|END_THINKING|><|START_ACTION|>[\n\n"
        '    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}}'
        "\n\n]<|END_ACTION|><|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TOOL_RESULT|>[\n    {\n"
        '        "tool_call_id": "0",\n        "results": {\n\n            \n'
        '            "0": {"content": "15C sunny"}\n\n        },\n        "is_error": null\n'
        "    }\n\n]<|END_TOOL_RESULT|><|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|><|START_TEXT|>thanks<|END_TEXT|>"
        "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|>"
    )


def test_multi_tool_calls_and_results() -> None:
    got = render([
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "function": {"name": "t1", "arguments": {}}},
            {"id": "b", "function": {"name": "t2", "arguments": {"x": 1}}}]},
        {"role": "tool", "tool_call_id": "a", "content": "r1"},
        {"role": "tool", "tool_call_id": "b", "content": "r2"},
    ])  # fmt: skip
    assert (
        '<|START_ACTION|>[\n\n    {"tool_call_id": "0", "tool_name": "t1", "parameters": {}},'
        '\n\n    {"tool_call_id": "1", "tool_name": "t2", "parameters": {"x": 1}}\n\n]'
        "<|END_ACTION|>"
    ) in got
    # A run of results is one turn, each naming its call's number.
    assert (
        '<|START_TOOL_RESULT|>[\n    {\n        "tool_call_id": "0",\n        "results": {\n\n'
        '            \n            "0": {"content": "r1"}\n\n        },\n        "is_error": '
        'null\n    },\n    {\n        "tool_call_id": "1",\n        "results": {\n\n'
        '            \n            "0": {"content": "r2"}\n\n        },\n        "is_error": '
        "null\n    }\n\n]<|END_TOOL_RESULT|>"
    ) in got
    # The prompt ends with the model's turn, after the results.
    assert got.endswith("<|END_TOOL_RESULT|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|>"
                        "<|CHATBOT_TOKEN|><|START_THINKING|>")  # fmt: skip


def test_assistant_prefill() -> None:
    got = render([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "partial"}])
    assert got.endswith("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_TEXT|>partial")


def test_result_of_an_unknown_call_keeps_its_id() -> None:
    """A result whose call the conversation does not hold names the id it gives; its text is
    JSON-escaped as Go's encoder escapes it."""
    got = render([{"role": "tool", "tool_call_id": "zz", "content": "<a & b>"}])
    assert ('"tool_call_id": "zz"' in got
            and '"0": {"content": "\\u003ca \\u0026 b\\u003e"}' in got)  # fmt: skip
