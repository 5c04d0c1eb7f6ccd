"""gpt-oss's prompt (`trio_ollama.renderers.harmony`), byte for byte what the Go template of
Ollama's gpt-oss models writes for the same messages, tools and think value (Ollama has no
renderer for it, nor tests: the cases are the template's branches). The date is fixed here;
Ollama's own template tests compare with today's, as the last test does."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from trio_ollama.prompt import ModelPrompt, PromptError
from trio_ollama.renderers import builtin_renderer
from trio_ollama.renderers.harmony import HarmonyRenderer
from trio_ollama.templates import Message, ToolCall, ToolCallFunction

DAY = datetime.date(2026, 8, 21)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "required": ["location"], "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco"},
        "unit": {"type": ["string", "null"]}}}}}  # fmt: skip
NO_PARAMETERS = {"type": "function", "function": {"name": "now"}}
SEARCH = {"type": "function", "function": {"name": "browser.search"}}
PYTHON = {"type": "function", "function": {"name": "python"}}


def system(reasoning: str | None = "medium", *, functions: bool = False, tools: str = "") -> str:
    out = (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2026-08-21"
    )
    if reasoning:
        out += f"\n\nReasoning: {reasoning}"
    out += tools
    out += (
        "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every "
        "message."
    )
    if functions:
        out += "\nCalls to these tools must go to the commentary channel: 'functions'."
    return out + "<|end|>"


def render(messages: list[Message], tools: list[Any] | None = None, think: Any = None) -> str:
    return HarmonyRenderer(today=lambda: DAY).render(messages, tools, think)


USER = Message(role="user", content="Hi")


@pytest.mark.parametrize(
    ("think", "reasoning"),
    [(None, "medium"), (True, "medium"), (False, None), ("low", "low"), ("high", "high"),
     ("max", "max")],
)  # fmt: skip
def test_reasoning_effort_follows_think(think: Any, reasoning: str | None) -> None:
    assert render([USER], think=think) == (
        system(reasoning) + "<|start|>user<|message|>Hi<|end|><|start|>assistant"
    )


def test_system_messages_are_the_developers_instructions() -> None:
    msgs = [Message(role="system", content="Be brief."), USER,
            Message(role="system", content="And kind.")]  # fmt: skip
    assert render(msgs) == (
        system() + "<|start|>developer<|message|>\n\n# Instructions\n\nBe brief.\n\nAnd kind."
        "<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant"
    )


def test_functions_are_a_typescript_namespace() -> None:
    assert render([Message(role="system", content="Be brief."), USER], [WEATHER, NO_PARAMETERS],
                  think="high") == (
        system("high", functions=True)
        + "<|start|>developer<|message|># Tools\n\n## functions\n\nnamespace functions {\n\n"
        "// Get the current weather in a given location\n"
        "type get_weather = (_: {\n"
        "  // The city and state, e.g. San Francisco\n"
        "  location: string,\n"
        "  unit: string | null,\n"
        "}) => any;\n\n"
        "type now = () => any;\n\n"
        "} // namespace functions\n\n# Instructions\n\nBe brief.<|end|>"
        "<|start|>user<|message|>Hi<|end|><|start|>assistant"
    )  # fmt: skip


def test_gpt_oss_own_tools_are_described_in_the_system_message() -> None:
    browser = (
        "\n\n# Tools\n\n## browser\n\n// Tool for browsing.\n"
        "// The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
        "// Cite information from the tool using the following format:\n"
        "// `【{cursor}†L{line_start}(-L{line_end})?】`, for example: "
        "`【6†L9-L11】` or `【8†L3】`.\n"
        "// Do not quote more than 10 words directly from the tool output.\n"
        "// sources=web (default: web)\nnamespace browser {\n\n"
        "// Searches for information related to `query` and displays `topn` results.\n"
        "type search = (_: {\nquery: string,\ntopn?: number, // default: 10\nsource?: string,\n"
        "}) => any;\n\n} // namespace browser\n\n## python\n\n"
        "Use this tool to execute Python code in your chain of thought. The code will not be "
        "shown to the user. This tool should be used for internal reasoning, but not for code "
        "that is intended to be visible to the user (e.g. when creating plots, tables, or "
        "files).\n\nWhen you send a message containing Python code to python, it will be "
        "executed in a stateful Jupyter notebook environment. python will respond with the "
        "output of the execution or time out after 120.0 seconds. The drive at '/mnt/data' can "
        "be used to save and persist user files. Internet access for this session is UNKNOWN. "
        "Depends on the cluster."
    )
    assert render([USER], [PYTHON, SEARCH]) == (
        system(tools=browser) + "<|start|>user<|message|>Hi<|end|><|start|>assistant"
    )


def test_a_conversation_with_a_call_and_its_result() -> None:
    call = ToolCall(
        function=ToolCallFunction(name="get_weather", arguments={"location": "Oslo <N>"})
    )
    msgs = [
        Message(role="user", content="Weather in Oslo?"),
        Message(role="assistant", thinking="Need the tool.", tool_calls=(call,)),
        Message(role="tool", tool_name="get_weather", content='{"sunny": true}'),
        Message(role="assistant", thinking="It is sunny.", content="Sunny."),
        Message(role="user", content="Thanks"),
        Message(role="assistant", thinking="Old thought.", content="Welcome."),
        Message(role="user", content="Bye"),
    ]
    assert render(msgs, [WEATHER], think=False).removeprefix(system(None, functions=True)) == (
        "<|start|>developer<|message|># Tools\n\n## functions\n\nnamespace functions {\n\n"
        "// Get the current weather in a given location\ntype get_weather = (_: {\n"
        "  // The city and state, e.g. San Francisco\n  location: string,\n"
        "  unit: string | null,\n}) => any;\n\n} // namespace functions<|end|>"
        "<|start|>user<|message|>Weather in Oslo?<|end|>"
        # Thinking before the last user message is left out.
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"location":"Oslo \\u003cN\\u003e"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|message|>{"sunny": true}<|end|>'
        "<|start|>assistant<|channel|>final<|message|>Sunny.<|end|>"
        "<|start|>user<|message|>Thanks<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Welcome.<|end|>"
        "<|start|>user<|message|>Bye<|end|><|start|>assistant"
    )


def test_builtin_calls_go_to_the_analysis_channel() -> None:
    call = ToolCall(function=ToolCallFunction(name="python", arguments={"code": "1+1"}))
    msgs = [USER, Message(role="assistant", tool_calls=(call,)),
            Message(role="tool", tool_name="python", content="2")]  # fmt: skip
    assert render(msgs, [PYTHON]).endswith(
        "<|start|>user<|message|>Hi<|end|>"
        '<|start|>assistant<|channel|>analysis to=python <|constrain|>json<|message|>{"code":"1+1"}'
        "<|call|><|start|>python to=assistant<|message|>2<|end|><|start|>assistant"
    )


def test_thinking_after_the_last_user_message_is_kept() -> None:
    msgs = [USER, Message(role="assistant", thinking="Think.", content="Answer."),
            Message(role="tool", tool_name="f", content="r")]  # fmt: skip
    assert render(msgs).removeprefix(system()) == (
        "<|start|>user<|message|>Hi<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Think.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Answer.<|end|>"
        "<|start|>functions.f to=assistant<|message|>r<|end|><|start|>assistant"
    )


def test_a_last_answer_is_left_open_for_the_model_to_go_on() -> None:
    # The template leaves every assistant answer open then, not only the last.
    msgs = [USER, Message(role="assistant", content="One."), Message(role="user", content="More"),
            Message(role="assistant", thinking="Hmm.", content="Two")]  # fmt: skip
    assert render(msgs).removeprefix(system()) == (
        "<|start|>user<|message|>Hi<|end|>"
        "<|start|>assistant<|channel|>final<|message|>One."
        "<|start|>user<|message|>More<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Hmm.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Two"
    )


def test_last_thinking_alone_is_left_open() -> None:
    msgs = [USER, Message(role="assistant", thinking="Let me see")]
    assert render(msgs).removeprefix(system()) == (
        "<|start|>user<|message|>Hi<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Let me see"
    )


def test_consecutive_messages_of_a_role_are_merged_as_ollama_does() -> None:
    msgs = [USER, Message(role="user", content="there")]
    assert render(msgs).removeprefix(system()) == (
        "<|start|>user<|message|>Hi\n\nthere<|end|><|start|>assistant"
    )


def test_a_property_without_a_type_fails_as_the_template_does() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"description": "no type"}}}}}  # fmt: skip
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="harmony")  # fmt: skip
    with pytest.raises(PromptError, match="index out of range") as caught:
        model.render([USER], tools=[tool])
    assert not caught.value.invalid


def test_a_model_with_renderer_harmony_renders_with_todays_date() -> None:
    assert builtin_renderer("harmony") is not None
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=False, renderer="harmony", parser="harmony")  # fmt: skip
    tools = [{"type": "function", "function": {"name": "get weather"}}]
    prompt = model.render([USER], tools=tools, think="low")
    assert f"Current date: {datetime.date.today().isoformat()}\n\nReasoning: low" in prompt
    # The harmony parser names the tools for the prompt (and reads calls back by that name).
    assert "type get_weather = () => any;" in prompt
