"""Coding agents' real requests, replayed through the real server: every request that Claude Code,
Codex (`exec`, and `--oss`) and the OpenAI Agents SDK sent in a captured run (tests/data/agents/,
its README says how they were captured), streamed and not, each answer checked against the
official SDK's types (`anthropic`, `openai`; `tests.agents.check_answer`).

Only the number of tokens to write is changed (to 4), and the stream flag; everything else goes
as the client sent it, headers included. The server runs at a 512-token context, so that the
long prompts (Claude Code's about 3,100 tokens, Codex's 4,700) are cut to the window and each
costs a few seconds, not a minute: the answer's shape does not depend on how much of the prompt
the model read. (A prompt cut to the window is computed again at each request, the same request
again included: none of it is read from the cache, as `cached_tokens` says.)"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents import CLIENTS, captured, check_answer, model_requests
from tests.server import running_server
from tests.templates_with_tools import TOOLS_MODEL, TOOLS_TEMPLATE
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model

pytestmark = pytest.mark.slow

MAX_TOKENS = 4
# Per API, the field that bounds the answer.
LIMIT = {"/v1/messages": "max_tokens", "/v1/responses": "max_output_tokens",
         "/v1/chat/completions": "max_tokens"}  # fmt: skip
# Headers that belong to the captured connection, not to the request.
CONNECTION = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
CASES = [
    pytest.param(client, k, stream, id=f"{client}-{k}-{'stream' if stream else 'whole'}")
    for client in CLIENTS
    for k, _ in model_requests(client)
    for stream in (True, False)
]  # fmt: skip


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("agents") / "models"
    store = Store(root)
    ensure_default_model(store)
    store.create(TOOLS_MODEL, CreateRequest(from_=DEFAULT_MODEL, template=TOOLS_TEMPLATE))
    with running_server(root, {"OLLAMA_CONTEXT_LENGTH": "512"}) as base:
        yield base


def replayed(exchange: dict[str, Any], stream: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """The captured request's headers (a dummy credential where one was) and its body, with
    the answer's length bounded and streaming as asked."""
    headers = {k: v for k, v in exchange["headers"].items() if k not in CONNECTION}
    for name, value in headers.items():
        if value == "<redacted>":
            headers[name] = "Bearer dummy" if name == "authorization" else "dummy"
    body = copy.deepcopy(exchange["body"])
    path = exchange["path"].split("?")[0]
    for field in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        body.pop(field, None)
    body[LIMIT[path]] = MAX_TOKENS
    body["stream"] = stream
    if not stream:
        body.pop("stream_options", None)
    return headers, body


def test_every_client_was_captured() -> None:
    for client in CLIENTS:
        assert list(model_requests(client)), f"no model request captured from {client}"
        assert all("<redacted>" not in str(e["body"]) for e in captured(client))


@pytest.mark.parametrize(("client", "k", "stream"), CASES)
def test_replayed_answer_is_what_the_sdk_reads(url: str, client: str, k: int, stream: bool) -> None:
    exchange = captured(client)[k]
    headers, body = replayed(exchange, stream)
    reply = httpx.post(url + exchange["path"], headers=headers, json=body, timeout=1800)
    assert reply.status_code == 200, reply.text[:2000]
    kind = reply.headers["content-type"]
    assert ("text/event-stream" in kind) == stream, kind
    assert check_answer(exchange["path"], reply.status_code, kind, reply.text) == []
