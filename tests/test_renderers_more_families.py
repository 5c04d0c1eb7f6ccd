"""Ollama's built-in renderers for functiongemma, lfm2, nemotron-3-nano, olmo3, olmo3-think,
qwen3-vl and qwen3.5 (issue 31): cases from Ollama's own renderer tests, each prompt exact."""

from __future__ import annotations

from typing import Any

import pytest

from trio_ollama.renderers import builtin_renderer
from trio_ollama.templates import Message, ToolCall, ToolCallFunction

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "required": ["location"],
            "properties": {"location": {"type": "string", "description": "The city"}},
        },
    },
}
GEMMA_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "City"}}},
    },
}  # fmt: skip
BARE = [{"type": "function", "function": {"name": "get_weather",
                                          "parameters": {"type": "object"}}}]  # fmt: skip


def call(name: str, **args: Any) -> ToolCall:
    return ToolCall(function=ToolCallFunction(name=name, arguments=args))


def msg(role: str, content: str = "", **kw: Any) -> Message:
    return Message(role=role, content=content, **kw)


OLMO_FUNCTIONS = (
    '<functions>[{"type": "function", "function": {"name": "get_weather", "description": "Get the'
    ' current weather", "parameters": {"type": "object", "required": ["location"], "properties":'
    ' {"location": {"type": "string", "description": "The city"}}}}}]</functions>'
)

CASES: list[tuple[str, list[Message], Any, Any, str]] = [
    (
        "olmo3",
        [msg("user", "Hello!")],
        None,
        None,
        "<|im_start|>system\nYou are a helpful function-calling AI assistant. You do not currently"
        " have access to any functions. <functions></functions><|im_end|>\n<|im_start|>user\n"
        "Hello!<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        "olmo3",
        [msg("system", "You are a helpful assistant."), msg("user", "What is the weather?")],
        [WEATHER],
        None,
        "<|im_start|>system\nYou are a helpful assistant." + OLMO_FUNCTIONS + "<|im_end|>\n"
        "<|im_start|>user\nWhat is the weather?<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        "olmo3",
        [
            msg("system", "You are a helpful assistant."),
            msg("user", "What is the weather in SF?"),
            msg(
                "assistant",
                "Let me check the weather.",
                tool_calls=[call("get_weather", location="San Francisco")],
            ),
            msg("tool", '{"temperature": 68}', tool_name="get_weather"),
        ],
        [WEATHER],
        None,
        "<|im_start|>system\nYou are a helpful assistant." + OLMO_FUNCTIONS + "<|im_end|>\n"
        "<|im_start|>user\nWhat is the weather in SF?<|im_end|>\n<|im_start|>assistant\n"
        'Let me check the weather.<function_calls>get_weather(location="San Francisco")'
        "</function_calls><|im_end|>\n<|im_start|>environment\n"
        '{"temperature": 68}<|im_end|>\n<|im_start|>assistant\n',
    ),
    (
        "olmo3-think",
        [msg("user", "Hi"), msg("assistant", "Hello"), msg("tool", "x"), msg("user", "Again")],
        None,
        None,
        "<|im_start|>system\nYou are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is"
        " December 2024, and your model weights are available at https://huggingface.co/allenai."
        "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
        "<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n<think>",
    ),
    (
        "functiongemma",
        [msg("user", "Hello!")],
        None,
        None,
        "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n",
    ),
    (
        "functiongemma",
        [msg("developer", "You are a coding assistant"), msg("user", "Hello!")],
        None,
        None,
        "<bos><start_of_turn>developer\nYou are a coding assistant<end_of_turn>\n"
        "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n",
    ),
    (
        "functiongemma",
        [msg("system", "You are a weather expert."), msg("user", "Weather?")],
        [GEMMA_WEATHER],
        None,
        "<bos><start_of_turn>developer\nYou are a weather expert.\nYou can do function calling with"
        " the following functions:<start_function_declaration>declaration:get_weather{description:"
        "<escape>Get weather<escape>,parameters:{properties:{city:{description:"
        "<escape>City<escape>,type:<escape>STRING<escape>}},type:<escape>OBJECT<escape>}}<end_function_declaration>"
        "<end_of_turn>\n<start_of_turn>user\nWeather?<end_of_turn>\n<start_of_turn>model\n",
    ),
    (
        "lfm2",
        [msg("user", "Hello")],
        None,
        False,
        "<|startoftext|><|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        "lfm2",
        [
            msg("user", "Call a tool"),
            msg("assistant", tool_calls=[call("get_weather", location="Paris")]),
            msg("tool", "22C"),
        ],
        None,
        False,
        "<|startoftext|><|im_start|>user\nCall a tool<|im_end|>\n<|im_start|>assistant\n"
        '<|tool_call_start|>[get_weather(location="Paris")]<|tool_call_end|><|im_end|>\n'
        "<|im_start|>tool\n<|tool_response_start|>22C<|tool_response_end|><|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    (
        "lfm2",
        [
            msg("user", "Call a tool"),
            msg("assistant", "Checking now.", tool_calls=[call("get_weather", location="Paris")]),
        ],
        None,
        False,
        "<|startoftext|><|im_start|>user\nCall a tool<|im_end|>\n<|im_start|>assistant\n"
        '<|tool_call_start|>[get_weather(location="Paris")]<|tool_call_end|>\nChecking now.',
    ),
    (
        "lfm2-thinking",
        [
            msg("user", "Weather?"),
            msg(
                "assistant",
                thinking="Let me check the weather.",
                tool_calls=[call("get_weather", location="Paris")],
            ),
            msg("tool", "22C"),
        ],
        None,
        True,
        "<|startoftext|><|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
        '<think>Let me check the weather.</think><|tool_call_start|>[get_weather(location="Paris")]'
        "<|tool_call_end|><|im_end|>\n<|im_start|>tool\n<|tool_response_start|>22C"
        "<|tool_response_end|><|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        "lfm2",
        [msg("user", "Hi")],
        BARE,
        None,
        '<|startoftext|><|im_start|>system\nList of tools: <|tool_list_start|>[{"name": '
        '"get_weather", "parameters": {"type": "object", "properties": null}}]'
        "<|tool_list_end|><|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    ),
    (
        "qwen3-vl-instruct",
        [
            msg("system", "You are a helpful assistant."),
            msg("user", "Tell me something interesting."),
            msg("assistant", "I'll tell you something interesting about cats"),
        ],
        None,
        None,
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nTell me"
        " something interesting.<|im_end|>\n<|im_start|>assistant\nI'll tell you something"
        " interesting about cats",
    ),
    (
        "qwen3-vl-instruct",
        [
            msg("user", "Tell me a story in two sentences."),
            msg(
                "assistant",
                "abc<think>To make this story interesting, I will speak in poetry.</think>",
            ),
        ],
        None,
        None,
        "<|im_start|>user\nTell me a story in two sentences.<|im_end|>\n<|im_start|>assistant\n"
        "abc<think>To make this story interesting, I will speak in poetry.</think>",
    ),
    (
        "qwen3-vl-thinking",
        [msg("user", "Hi")],
        None,
        None,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n",
    ),
    (
        "qwen3.5",
        [msg("user", "Hi")],
        None,
        False,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    ),
    (
        "qwen3.5",
        [
            msg("user", "Weather?"),
            msg(
                "assistant",
                "",
                thinking="Need it.",
                tool_calls=[call("get_weather", location="Paris", days=2)],
            ),
            msg("tool", "22C"),
        ],
        None,
        True,
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<think>\nNeed it.\n</think>"
        "\n\n<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n"
        "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call><|im_end|>\n<|im_start|>user"
        "\n<tool_response>\n22C\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n",
    ),
    (
        "nemotron-3-nano",
        [msg("user", "Hi /no_think")],
        None,
        None,
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think></think>",
    ),
    (
        "nemotron-3-nano",
        [
            msg("user", "Weather?"),
            msg("assistant", tool_calls=[call("get_weather", location="Paris")]),
            msg("tool", "22C"),
        ],
        None,
        None,
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n"
        "<|im_start|>assistant\n<think></think>\n<tool_call>\n<function=get_weather>\n"
        "<parameter=location>\nParis\n</parameter>\n</function>\n</tool_call>\n<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n22C\n</tool_response>\n<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n",
    ),
]


@pytest.mark.parametrize(("name", "messages", "tools", "think", "expected"), CASES)
def test_renders_as_ollama(name: str, messages: list[Message], tools: Any, think: Any,
                           expected: str) -> None:  # fmt: skip
    renderer = builtin_renderer(name)
    assert renderer is not None
    assert renderer.render(messages, tools, think) == expected
