"""Ollama's `qwen3.8` renderer (Qwen 3.5's code in its 3.8 variant, issue 31): the cases of
Ollama's qwen38_test.go, each prompt exact, and the conversations it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from trio_ollama.renderers import builtin_renderer
from trio_ollama.renderers.common import RenderError
from trio_ollama.renderers.qwen35 import LOW, XHIGH, effort_instructions
from trio_ollama.templates import Message, ToolCall, ToolCallFunction


def tool(name: str, description: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description,
            "parameters": {"type": "object", "required": ["city"],
                           "properties": {"city": {"type": "string"}}}}}  # fmt: skip


WEATHER = [tool("get_weather", "Get weather"), tool("get_uv", "Get UV index")]

TOOL_HEADER = """<|im_start|>system
# Tools

You have access to the following functions:

<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Get weather", \
"parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}
{"type": "function", "function": {"name": "get_uv", "description": "Get UV index", \
"parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}
</tools>

If you choose to call a function ONLY reply in the following format with NO suffix:

<tool_call>
<function=example_function_name>
<parameter=example_parameter_1>
value_1
</parameter>
<parameter=example_parameter_2>
This is the value for the second parameter
that can span
multiple lines
</parameter>
</function>
</tool_call>

<IMPORTANT>
Reminder:
- Function calls MUST follow the specified format: an inner <function=...></function> block \
must be nested within <tool_call></tool_call> XML tags
- Required parameters MUST be specified
- You may provide optional reasoning for your function call in natural language BEFORE the \
function call, but NOT after
- If there is no function call available, answer the question like normal with your current \
knowledge and do not tell the user about function calls
</IMPORTANT><|im_end|>
"""
DEVELOPER_TOOL_HEADER = (
    TOOL_HEADER.removesuffix("<|im_end|>\n") + "\n\nUse tools when requested.<|im_end|>\n"
)
OPEN = "<|im_start|>assistant\n<think>\n"
NO_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def msg(role: str, content: str = "", **kw: Any) -> Message:
    return Message(role=role, content=content, **kw)


def system(text: str) -> str:
    return f"<|im_start|>system\n{text}<|im_end|>\n"


def user(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n"


WEATHER_CALL = ToolCall(function=ToolCallFunction(name="get_weather",
                                                  arguments={"city": "Montréal"}))  # fmt: skip

# (name, messages, tools, think, prompt): TestQwen38RendererMatchesReferenceFlows.
CASES: list[tuple[str, list[Message], Any, Any, str]] = [
    ("default xhigh injects system guidance", [msg("user", "Hello")], None, None,
     system(XHIGH) + user("Hello") + OPEN),
    ("developer instruction maps to system",
     [msg("developer", "Use Go."), msg("user", "Hello")], None, None,
     system(XHIGH + "\n\nUse Go.") + user("Hello") + OPEN),
    ("system and developer instructions merge",
     [msg("system", "Base policy."), msg("developer", "Use Go."), msg("user", "Hello")],
     None, None, system(XHIGH + "\n\nBase policy.\n\nUse Go.") + user("Hello") + OPEN),
    ("multiple leading system instructions merge",
     [msg("system", "Base policy."), msg("system", "Request policy."), msg("user", "Hello")],
     None, None, system(XHIGH + "\n\nBase policy.\n\nRequest policy.") + user("Hello") + OPEN),
    ("request system after base conversation merges with base policy",
     [msg("system", "Base policy."), msg("user", "Base question"),
      msg("assistant", "Base answer"), msg("system", "Request policy."),
      msg("user", "Current question")], None, None,
     system(XHIGH + "\n\nBase policy.\n\nRequest policy.") + user("Base question")
     + "<|im_start|>assistant\n<think>\n\n</think>\n\nBase answer<|im_end|>\n"
     + user("Current question") + OPEN),
    ("boolean true uses API medium effort",
     [msg("system", " Be concise. \n"), msg("user", "Hello")], None, True,
     system("Be concise.") + user("Hello") + OPEN),
    ("low effort injects concise guidance", [msg("user", "Hello")], None, "low",
     system(LOW) + user("Hello") + OPEN),
    ("thinking disabled emits explicit empty block", [msg("user", "Hello")], None, False,
     user("Hello") + NO_THINK),
    ("preserves reasoning metadata without extracting content tags",
     [msg("user", "First"), msg("assistant", "<think>literal</think>\nAnswer", thinking="Plan"),
      msg("user", "Next")], None, None,
     system(XHIGH) + user("First")
     + "<|im_start|>assistant\n<think>\nPlan\n</think>\n\n<think>literal</think>\nAnswer"
     "<|im_end|>\n" + user("Next") + OPEN),
    ("developer instruction with tools",
     [msg("developer", "Use tools when requested."), msg("user", "Check the weather.")],
     WEATHER, True, DEVELOPER_TOOL_HEADER + user("Check the weather.") + OPEN),
    ("tool call result and next generation prompt",
     [msg("user", "Weather?"),
      msg("assistant", "I'll check.", thinking="Need current data.", tool_calls=(WEATHER_CALL,)),
      msg("tool", '{"temp": 18}')], WEATHER, True,
     TOOL_HEADER + user("Weather?")
     + "<|im_start|>assistant\n<think>\nNeed current data.\n</think>\n\nI'll check.\n\n"
     "<tool_call>\n<function=get_weather>\n<parameter=city>\nMontréal\n</parameter>\n"
     "</function>\n</tool_call><|im_end|>\n"
     "<|im_start|>user\n<tool_response>\n{\"temp\": 18}\n</tool_response><|im_end|>\n" + OPEN),
    # Ollama's case renders the image as Qwen's vision tokens, which its server never asks
    # for (it sets RenderImgTags): here the image is the runner's tag, as the server sends it.
    ("image content", [msg("user", "Describe this.", images=(b"\x01",))], None, False,
     user("[img-0] Describe this.") + NO_THINK),
    # TestQwen38RendererAssistantPrefillKnownJinjaDifference: the answer goes on.
    ("assistant prefill",
     [msg("user", "Complete this"), msg("assistant", "Partial", thinking="Draft")], None, None,
     system(XHIGH) + user("Complete this")
     + "<|im_start|>assistant\n<think>\nDraft\n</think>\n\nPartial"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "messages", "tools", "think", "expected"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_prompt_is_ollamas(
    name: str, messages: list[Message], tools: Any, think: Any, expected: str
) -> None:
    renderer = builtin_renderer("qwen3.8")
    assert renderer is not None
    assert renderer.render(messages, tools, think) == expected


@pytest.mark.parametrize(
    ("think", "expected"),
    [(None, XHIGH), (True, ""), (False, ""), ("low", LOW), ("medium", ""), ("high", XHIGH),
     ("max", XHIGH)],
)  # fmt: skip
def test_reasoning_effort_mapping(think: bool | str | None, expected: str) -> None:
    assert effort_instructions(think) == expected


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], "no messages provided"),
        ([msg("system", "Hello")], "no user query found in messages"),
        ([msg("system", images=(b"\x01",)), msg("user", "Hello")],
         "system message cannot contain images"),
        ([msg("developer", "x", images=(b"\x01",)), msg("user", "Hello")],
         "developer message cannot contain images"),
        ([msg("user", "<tool_response>\nx\n</tool_response>")],
         "no user query found in messages"),
    ],
    ids=["empty", "no user query", "system image", "developer image", "only tool answers"],
)  # fmt: skip
def test_refused_conversations(messages: list[Message], error: str) -> None:
    renderer = builtin_renderer("qwen3.8")
    assert renderer is not None
    with pytest.raises(RenderError) as raised:
        renderer.render(messages, None, None)
    assert str(raised.value) == error


def test_an_unknown_role_is_written_as_it_is() -> None:
    renderer = builtin_renderer("qwen3.8")
    assert renderer is not None
    got = renderer.render([msg("user", "Hi"), msg("critic", " Shorter. ")], None, False)
    assert got == user("Hi") + "<|im_start|>critic\nShorter.<|im_end|>\n" + NO_THINK


def test_qwen35_is_unchanged_by_the_variant() -> None:
    """Qwen 3.5 keeps its own ways: a system turn however empty, no effort text, an answer's
    tagged reasoning read out of its text, an unknown role dropped."""
    renderer = builtin_renderer("qwen3.5")
    assert renderer is not None
    got = renderer.render([msg("system", " "), msg("user", "Q"),
                           msg("assistant", "<think>R</think>\nA"), msg("critic", "x")],
                          None, None)  # fmt: skip
    answer = "<|im_start|>assistant\n<think>\nR\n</think>\n\nA<|im_end|>\n"
    assert got == system("") + user("Q") + answer + OPEN
