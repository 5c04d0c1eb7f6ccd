"""The built-in web-search tools that coding agents send (Codex's `web_search` on
`/v1/responses`, Claude Code's `web_search_20250305` on `/v1/messages`), through the real
server and model: accepted as Ollama accepts them, and a search the model asks for answered as
Ollama answers a search that fails (this server reaches no network), checked against the
official clients' types, streamed and not. The translation's rules are tested beside the
rest of each API's (`test_api_responses.py`, `test_api_anthropic.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.server import running_server
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model

pytestmark = pytest.mark.slow

SEARCHER = "searcher"
# ChatML with calls written as bare JSON objects (as Llama 3.2 writes them): the chat path
# learns that shape from the template and reads the model's call back from it.
TEMPLATE = """{{- if .Tools }}<|im_start|>system
You can call these tools:
{{ range .Tools }}{{ .Function }}
{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters":
{{- .Function.Arguments }}}{{ end }}
{{- else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
QUERY = "the capital of France"
UNAVAILABLE = "web search is unavailable: this server does not reach the network"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Iterator[str]:
    store = Store(tmp_path_factory.mktemp("search") / "models")
    ensure_default_model(store)
    store.create(
        SEARCHER,
        CreateRequest(from_=DEFAULT_MODEL, template=TEMPLATE, parameters={"temperature": 0}),
    )
    with running_server(store.root) as base:
        yield base


# --- Anthropic: Claude Code's server tool ---------------------------------------------------------


def past_search(i: int, query: str, answer: str) -> list[dict[str, Any]]:
    """One earlier turn in which the model searched: what Claude Code sends back."""
    ident = f"srvtoolu_{i}"
    result = [{"type": "web_search_result", "title": answer, "url": "https://example.com"}]
    return [
        {"role": "user", "content": f"Search the web for {query}."},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": ident, "name": "web_search",
                 "input": {"query": query}},
                {"type": "web_search_tool_result", "tool_use_id": ident, "content": result},
                {"type": "text", "text": answer},
            ],
        },
    ]  # fmt: skip


# Three searches in the history, so that the small model searches again when asked to.
HISTORY: Any = [
    *past_search(0, "the weather in Oslo", "Rain"),
    *past_search(1, "the price of gold", "2000 dollars"),
    *past_search(2, "the tallest building", "Burj Khalifa"),
    {"role": "user", "content": f"Search the web for {QUERY}."},
]
SERVER_TOOL: Any = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]


@pytest.fixture(scope="module")
def claude(url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


def search_failed(content: list[Any]) -> None:
    use, result = content
    assert use.type == "server_tool_use" and use.name == "web_search"
    assert isinstance(use.input, dict) and "capital of France" in use.input["query"]
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert result.content.type == "web_search_tool_result_error"
    assert result.content.error_code == "unavailable"


def test_anthropic_web_search(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=SEARCHER,
        max_tokens=40,
        messages=HISTORY,
        tools=SERVER_TOOL,
        # What Claude Code sends beside: read past, as Ollama reads it.
        metadata={"user_id": "user_1"},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
        extra_body={"context_management": {"edits": []}},
    )
    search_failed(message.content)
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 200 and message.usage.output_tokens > 0


def test_anthropic_web_search_streamed(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=SEARCHER, max_tokens=40, messages=HISTORY, tools=SERVER_TOOL
    ) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    search_failed(message.content)
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0


# --- OpenAI Responses: Codex's default tool -------------------------------------------------------

# The call's shape, as the template writes it: a schema leaves the model no other answer.
CALL_FORMAT: Any = {
    "format": {
        "type": "json_schema",
        "name": "call",
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": ["web_search"]},
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string", "enum": [QUERY]}},
                    "required": ["query"],
                },
            },
            "required": ["name", "parameters"],
        },
    }
}
CODEX_TOOLS: Any = [
    {"type": "web_search", "external_web_access": False},
    {"type": "function", "name": "shell", "description": "Runs a command",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
    # A freeform tool: a function of its own type to the model.
    {"type": "custom", "name": "apply_patch", "description": "Edits files",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def codex(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_responses_web_search_is_accepted(codex: openai.OpenAI) -> None:
    # Offered and not used: an ordinary answer, the tools echoed as the client sent them.
    # (`local_shell` has no name; as in Ollama, whose parser finds the empty name at the start
    # of any text, a call the model writes beside it is read as a call of "": not used below.)
    r = codex.responses.create(
        model=SEARCHER,
        input="Say hello.",
        tools=[*CODEX_TOOLS, {"type": "local_shell"}],
        max_output_tokens=5,
    )
    assert r.status == "completed" and r.output[-1].type == "message"
    assert [tool.type for tool in r.tools] == ["web_search", "function", "custom", "local_shell"]


def test_responses_web_search(codex: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        codex.responses.create(
            model=SEARCHER, input=f"Search the web for {QUERY}.", tools=CODEX_TOOLS,
            text=CALL_FORMAT, max_output_tokens=40,
        )  # fmt: skip
    assert info.value.status_code == 502
    assert info.value.body == {
        "message": UNAVAILABLE,
        "type": "api_error",
        "param": None,
        "code": None,
    }


def test_responses_web_search_streamed(codex: openai.OpenAI) -> None:
    events = list(
        codex.responses.create(
            model=SEARCHER, input=f"Search the web for {QUERY}.", tools=CODEX_TOOLS,
            text=CALL_FORMAT, max_output_tokens=40, stream=True,
        )
    )  # fmt: skip
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-5:] == [
        "response.output_item.added",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.output_item.done",
        "response.failed",
    ]
    failed = events[-1]
    assert failed.type == "response.failed"
    response = failed.response
    assert response.status == "failed" and response.error is not None
    assert response.error.message == UNAVAILABLE
    (search,) = response.output
    assert search.type == "web_search_call" and search.status == "failed"
    assert search.action.query == QUERY  # type: ignore[union-attr]
