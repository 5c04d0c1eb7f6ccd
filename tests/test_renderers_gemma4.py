"""Ollama's `gemma4`, `gemma4-small`, `gemma4-large` and `ornith` renderers (issue 31): the cases of
Ollama's `model/renderers/gemma4_reference_test.go` (checked there against Gemma 4's own chat
template; tests/data/ollama-cases/renderers_gemma4.json), each prompt exact."""

from __future__ import annotations

from typing import Any

import pytest

from tests.parser_cases import cases, ids, messages, think_of
from trio_ollama.parsers import builtin_parser
from trio_ollama.parsers.qwen35 import Qwen35Parser
from trio_ollama.prompt import ModelPrompt
from trio_ollama.renderers import builtin_renderer
from trio_ollama.renderers.gemma4 import gemma4_variant
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model
from trio_ollama.templates import Message

FILE = "renderers_gemma4"
REFERENCE = cases(FILE, "TestGemma4RendererMatchesReference")
HELLO = [Message(role="user", content="Hello")]


def render(name: str, data: Any, tools: Any = None, think: Any = None) -> str:
    renderer = builtin_renderer(name)
    assert renderer is not None
    return renderer.render(messages(data) if isinstance(data, list) and data and isinstance(
        data[0], dict) else data, tools, think)  # fmt: skip


@pytest.mark.parametrize("case", REFERENCE, ids=ids(REFERENCE))
def test_reference_prompts(case: dict[str, Any]) -> None:
    got = render("gemma4", case["messages"], case.get("tools"), think_of(case.get("think")))
    assert got == case["expected"]


VARIANTS = cases(FILE, "TestGemma4RendererVariantsMatchExpectedGenerationPrompt")


@pytest.mark.parametrize("case", VARIANTS, ids=ids(VARIANTS))
def test_variants_generation_prompt(case: dict[str, Any]) -> None:
    assert render(case["rendererName"], HELLO) == case["expected"]


def test_large_thinking_has_no_empty_block() -> None:
    got = render("gemma4-large", HELLO, None, True)
    assert (
        got == "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHello<turn|>\n<|turn>model\n"
    )


@pytest.mark.parametrize("name", ["gemma4-small", "gemma4-large"])
def test_canonical_tool_continuations(name: str) -> None:
    q = '<|"|>'
    data = [
        {"role": "user", "content": "Use the tool"},
        {"role": "assistant", "content": "First."},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"function": {"name": "bash", "arguments": {"command": None}}}]},
        {"role": "tool", "tool_name": "bash", "content": "done"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Next"},
    ]  # fmt: skip
    tools = [{"type": "function", "function": {"name": "bash", "description": "Run",
              "parameters": {"type": "object", "required": ["command"], "properties": {
                  "command": {"type": "string", "description": "Cmd"}}}}}]  # fmt: skip
    want = (
        "<bos><|turn>system\n<|tool>declaration:bash{description:"
        + q
        + "Run"
        + q
        + ",parameters:{properties:{command:{description:"
        + q
        + "Cmd"
        + q
        + ",type:"
        + q
        + "STRING"
        + q
        + "}},required:["
        + q
        + "command"
        + q
        + "],type:"
        + q
        + "OBJECT"
        + q
        + "}}<tool|><turn|>\n<|turn>user\nUse the tool<turn|>\n<|turn>model\nFirst."
        "<|tool_call>call:bash{command:null}<tool_call|>"
        "<|tool_response>response:bash{value:" + q + "done" + q + "}<tool_response|>"
        "Checking.Done.<turn|>\n<|turn>user\nNext<turn|>\n<|turn>model\n"
    )
    if name == "gemma4-large":
        want += "<|channel>thought\n<channel|>"
    assert render(name, data, tools) == want


@pytest.mark.parametrize("case", cases(FILE, "TestGemma4RendererKnownJinja2Differences"),
                         ids=lambda c: c["name"])  # fmt: skip
def test_where_ollama_leaves_the_template(case: dict[str, Any]) -> None:
    # Ollama's renderer differs from Gemma's template here on purpose; Ollama's side is kept.
    got = render("gemma4", case["messages"], case["tools"])
    assert case["wantRenderFrag"] in got
    assert case["wantJinjaFrag"] not in got


def test_images_become_numbered_tags() -> None:
    data = [Message(role="user", content="What is this? [img]", images=(b"\x89PNG",)),
            Message(role="assistant", content="A cat."),
            Message(role="user", content="And this?", images=(b"\x89PNG",))]  # fmt: skip
    assert render("gemma4", data) == (
        "<bos><|turn>user\nWhat is this? [img-0]<turn|>\n<|turn>model\nA cat.<turn|>\n"
        "<|turn>user\n[img-1] And this?<turn|>\n<|turn>model\n"
    )


# Ollama serves `ornith` with Qwen 3.5's renderer keeping every past think block, and with Qwen
# 3.5's parser (model/renderers/ornith_test.go's cases).
ORNITH_HISTORY = [
    Message(role="user", content="Say hello."),
    Message(role="assistant", content="Hello.", thinking="Keep it short."),
    Message(role="user", content="Now say bye."),
]


def test_ornith_keeps_past_think_blocks() -> None:
    history = [ORNITH_HISTORY[0], Message(role="assistant", content="Hello."), ORNITH_HISTORY[2]]
    assert render("ornith", history) == (
        "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        "Hello.<|im_end|>\n<|im_start|>user\nNow say bye.<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n"
    )


def test_ornith_keeps_them_when_not_thinking() -> None:
    assert render("ornith", ORNITH_HISTORY, None, False) == (
        "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n<think>\nKeep it short."
        "\n</think>\n\nHello.<|im_end|>\n<|im_start|>user\nNow say bye.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_ornith_parser_is_qwen35s() -> None:
    assert isinstance(builtin_parser("ornith"), Qwen35Parser)


# Ollama's server/gemma4_test.go `TestResolveGemma4Renderer`: RENDERER gemma4 is resolved per
# model, by a size in its short name, then in its full name, then by its parameter size.
@pytest.mark.parametrize(("names", "parameter_size", "variant"), [
    (["gemma4:e4b"], "", "gemma4-small"),
    (["gemma4:31b-cloud"], "", "gemma4-large"),
    (["gemma-4-12b-it"], "", "gemma4-large"),
    (["mine:latest", "registry.ollama.ai/library/mine:latest"], "4.3B", "gemma4-small"),
    (["mine:latest"], "25.2B", "gemma4-large"),
    (["mine:latest"], "12B", "gemma4-large"),
    (["mine:latest"], "", "gemma4-small"),
    (["mine:latest"], "big", "gemma4-small"),
])  # fmt: skip
def test_gemma4_is_resolved_by_size(names: list[str], parameter_size: str, variant: str) -> None:
    assert gemma4_variant(names, parameter_size) == variant


def test_a_stored_gemma4_model_renders_with_its_sizes_variant(store: Store) -> None:
    """Through the store: the same weights named for a 31b model get the large prompt (its empty
    thought block when not thinking), named for an e4b model the small one."""
    ensure_default_model(store)
    prompts = {}
    for name in ("gemma4:31b", "gemma4:e4b"):
        store.create(name, CreateRequest(from_=DEFAULT_MODEL, renderer="gemma4"))
        model = ModelPrompt.of(store.show(name))
        prompts[name] = model.render([Message(role="user", content="Hello")], think=False)
    assert prompts["gemma4:31b"] == render("gemma4-large", [{"role": "user", "content": "Hello"}],
                                           think=False)  # fmt: skip
    assert prompts["gemma4:e4b"] == render("gemma4-small", [{"role": "user", "content": "Hello"}],
                                           think=False)  # fmt: skip
    assert prompts["gemma4:31b"] != prompts["gemma4:e4b"]
