"""Ollama's GLM parsers (`glm-4.7`, `glm-ocr`, on GLM-4.6's): Ollama's own cases, the same
answer in any pieces, and hostile output read in linear time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.parser_cases import (
    call_json,
    cases,
    expected_calls,
    feed,
    ids,
    same_in_any_pieces,
    survives_hostile,
)
from trio_ollama.parsers import ParseError, builtin_parser
from trio_ollama.parsers.glm46 import GLM46Parser, _repair, _xml
from trio_ollama.parsers.glm47 import GLM47Parser
from trio_ollama.parsers.glmocr import GlmOcrParser

GLM = "parsers_glm46"


def tool(name: str, props: Mapping[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """Ollama's test helper `tool`: a function with these properties."""
    params: dict[str, Any] = {"type": "object", "properties": dict(props)}
    if required:
        params["required"] = required
    return {"type": "function", "function": {"name": name, "parameters": params}}


def tools_of(data: list[Any] | None) -> list[dict[str, Any]]:
    return [tool(*t["args"]) if "__unknown_call__" in t else t for t in data or ()]


def glm46(tools: list[dict[str, Any]] | None = None) -> GLM46Parser:
    parser = GLM46Parser()
    parser.init(tools or [], None)
    return parser


def test_registered_under_ollamas_names() -> None:
    assert isinstance(builtin_parser("glm-4.7"), GLM47Parser)
    ocr = builtin_parser("glm-ocr")
    assert isinstance(ocr, GlmOcrParser) and not ocr.has_thinking_support
    assert builtin_parser("glm-4.6") is None  # Ollama registers none by that name


STREAMING = cases(GLM, "TestGLM46ParserStreaming")


def events(step: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    content = "".join(e["content"] for e in step.get("wantEvents") or ()
                      if e["__type__"] == "glm46EventContent")  # fmt: skip
    thinking = "".join(e["content"] for e in step.get("wantEvents") or ()
                       if e["__type__"] == "glm46EventThinkingContent")  # fmt: skip
    raws = [e["raw"] for e in step.get("wantEvents") or ()
            if e["__type__"] == "glm46EventRawToolCall"]  # fmt: skip
    return content, thinking, raws  # type: ignore[return-value]


@pytest.mark.parametrize("case", STREAMING, ids=[c["desc"] for c in STREAMING])
def test_glm46_ollama_streaming_cases(case: dict[str, Any]) -> None:
    """Each step's pieces give the step's events: text and thinking as Ollama's, and each raw
    call read as Ollama reads a raw call."""
    parser = glm46()
    index = 0
    for step in case["steps"]:
        want_content, want_thinking, raws = events(step)
        content, thinking, calls = parser.add(step["input"], False)
        assert (content, thinking) == (want_content, want_thinking)
        want = []
        for raw in raws:
            one = glm46()
            one._index = index
            want.append(call_json(one._call(raw, final=False)))
            index += 1
        assert [call_json(c) for c in calls] == want


@pytest.mark.parametrize("case", STREAMING, ids=[c["desc"] for c in STREAMING])
def test_glm46_same_in_any_pieces(case: dict[str, Any]) -> None:
    text = "".join(step["input"] for step in case["steps"])
    if "<tool_call>" in text and "</tool_call>" not in text.rpartition("<tool_call>")[2]:
        pytest.skip("a call left open at the end is an error for undeclared tools")
    same_in_any_pieces(glm46, text, "glm46" + case["desc"])


GREP = tool("grep", {"pattern": {"type": "string"}, "path": {"type": "string"}},
            ["pattern", "path"])  # fmt: skip
WRITE = tool("write", {"path": {"type": "string"}, "content": {"type": "string"}},
             ["path", "content"])  # fmt: skip
GREP_BODY = "grep\n<arg_key>pattern</arg_key>\n<arg_value>needle</arg_value>\n<arg_key>path</arg_key>\n<arg_value>.</arg_value>"  # noqa: E501


@pytest.mark.parametrize("pieces", [
    ["<tool_call>" + GREP_BODY, ""],
    ["<tool_call>" + GREP_BODY],
    ["<tool_call>" + GREP_BODY + "</tool_"],
])  # fmt: skip
def test_glm46_finalizes_a_whole_call_left_open_at_the_end(pieces: list[str]) -> None:
    got = feed(glm46([GREP, WRITE]), pieces)
    assert got == ("", "", [{"name": "grep", "arguments": {"pattern": "needle", "path": "."},
                             "index": 0}])  # fmt: skip


REJECTED = cases(GLM, "TestGLM46ParserRejectsIncompleteToolCallOnDone")


@pytest.mark.parametrize("case", REJECTED, ids=ids(REJECTED))
def test_glm46_rejects_an_incomplete_call_at_the_end(case: dict[str, Any]) -> None:
    with pytest.raises(ParseError, match="incomplete GLM tool call"):
        glm46([GREP, WRITE]).add(case["input"], True)


ORDER = cases(GLM, "TestGLMToolCallXMLOrderPreservation")


@pytest.mark.parametrize("case", ORDER, ids=ids(ORDER))
def test_glm_xml_keeps_keys_and_values_in_order(case: dict[str, Any]) -> None:
    body = case["xml"].removeprefix("<tool_call>").removesuffix("</tool_call>")
    _, keys, values = _xml(body)
    assert (keys, values) == (case["wantKeys"], case["wantValues"])


CALLS = cases(GLM, "TestGLM46ToolCallParsing")


@pytest.mark.parametrize("case", CALLS, ids=ids(CALLS))
def test_glm46_ollama_call_cases(case: dict[str, Any]) -> None:
    parser = glm46(tools_of(case.get("tools")))
    got = parser.add("<tool_call>" + case["rawToolCall"] + "</tool_call>", True)[2]
    want = expected_calls([case["wantToolCall"]])
    assert [call_json(c) for c in got] == want


REPAIRS = cases(GLM, "TestRepairGLM46XML")


@pytest.mark.parametrize("case", REPAIRS, ids=ids(REPAIRS))
def test_glm46_repairs_as_ollama(case: dict[str, Any]) -> None:
    assert _repair(case["input"]) == case["want"]


# ---- GLM-4.7 (Ollama's glm47_test.go) ---------------------------------------------------------

CALCULATE = tool("calculate", {"count": {"type": "integer"}, "enabled": {"type": "boolean"}})


def glm47(tools: list[dict[str, Any]] | None = None, think: bool | None = None) -> GLM47Parser:
    parser = GLM47Parser()
    parser.init(tools or [], think)
    return parser


GLM47_CASES = [
    # (name, tools, think, output, content, thinking, calls)
    ("thinks_by_default", [CALCULATE], None,
     "plan</think>Answer<tool_call>calculate<arg_key>count</arg_key><arg_value>3</arg_value>"
     "<arg_key>enabled</arg_key><arg_value>true</arg_value></tool_call>",
     "Answer", "plan", [("calculate", {"count": 3, "enabled": True})]),
    ("no_thinking_content", [], None, "</think>Plain answer", "Plain answer", "", []),
    ("thinking_disabled", [], False, "Plain answer", "Plain answer", "", []),
    ("escaping", [], None,
     "</think><tool_call>exec\n<arg_key>expr</arg_key>\n<arg_value>a < b && c > d</arg_value>"
     "</tool_call>", "", "", [("exec", {"expr": "a < b && c > d"})]),
    ("indexing", [], False,
     "<tool_call>first</tool_call><tool_call>second</tool_call><tool_call>third</tool_call>",
     "", "", [("first", {}), ("second", {}), ("third", {})]),
]  # fmt: skip


@pytest.mark.parametrize("case", GLM47_CASES, ids=[c[0] for c in GLM47_CASES])
def test_glm47_ollama_cases(case: tuple[Any, ...]) -> None:
    _, tools, think, output, content, thinking, calls = case
    want = [{"name": n, "arguments": a, "index": i} for i, (n, a) in enumerate(calls)]
    assert feed(glm47(tools, think), [output]) == (content, thinking, want)
    same_in_any_pieces(lambda: glm47(tools, think), output, "glm47" + case[0])


def test_glm47_indexes_streamed_calls_and_starts_again_at_init() -> None:
    parser = glm47([], False)
    got = []
    for piece in ["<tool_call>a</tool_call>", "<tool_call>b</tool", "_call>"]:
        got += [c.function.index for c in parser.add(piece, False)[2]]
    assert got == [0, 1]
    parser.init([], False)
    assert [c.function.index for c in parser.add("<tool_call>c</tool_call>", True)[2]] == [0]


# A megabyte of each hostile output, its eighth three times: seconds of CPU.
@pytest.mark.slow
def test_glm_hostile_output_in_linear_time() -> None:
    survives_hostile(glm46)
    survives_hostile(lambda: glm47([CALCULATE], True))
