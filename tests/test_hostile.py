"""Hostile input against the real server and the real model: each case gets its status and
text, and the server process and its runner are the same before and after (nothing a client
sends may kill either). Issue 10's cases that are fixed so far; more join as they are."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import RealServers, ServerProcess
from tests.templates_with_tools import TOOLS_MODEL, TOOLS_TEMPLATE
from trio_ollama.options import LOAD_OPTIONS
from trio_ollama.store import CreateRequest, Store

pytestmark = pytest.mark.slow

MODEL = "smollm2:135m"
VOCAB = 49152


# A 512-token window: the cases that fill it (cut to fit) prefill an eighth of the default.
# `test_hostile_format.py` shares the server.
SMALL_WINDOW = {"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_CONTEXT_LENGTH": "512"}


@pytest.fixture(scope="module")
def server(real_servers: RealServers) -> ServerProcess:
    proc = real_servers.get(SMALL_WINDOW)
    Store(proc.models).create(TOOLS_MODEL, CreateRequest(from_=MODEL, template=TOOLS_TEMPLATE))
    # Load the model once, so that every case below meets the same runner.
    httpx.post(proc.url + "/api/generate", json={"model": MODEL}, timeout=60)
    return proc


def post(server: ServerProcess, path: str, body: Any) -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body).encode(), timeout=120)


CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "context id past the vocabulary",
        "/api/generate",
        {"model": MODEL, "prompt": "hi", "context": [999_999_999], "stream": False},
        400,
        f"invalid token id 999999999: the vocabulary has {VOCAB}",
    ),
    (
        "context id one past the last token",
        "/api/generate",
        {"model": MODEL, "prompt": "hi", "context": [1, VOCAB], "stream": False},
        400,
        f"invalid token id {VOCAB}: the vocabulary has {VOCAB}",
    ),
    (
        "a lone surrogate in an embedding input",
        "/api/embed",
        {"model": MODEL, "input": "a\ud800b"},
        200,
        "",
    ),
    (
        "a lone surrogate in chat content",
        "/api/chat",
        {"model": MODEL, "stream": False, "options": {"num_predict": 2},
         "messages": [{"role": "user", "content": "x\udfffy"}]},
        200,
        "",
    ),
    (
        "a 907,176-token context (a 73 MB text)",
        "/api/generate",
        {"model": MODEL, "prompt": "", "context": [46778] * 907_176, "stream": False,
         "options": {"num_predict": 1}},
        200,
        "",
    ),
    (
        # 7 MB as JSON's \\u00e9 escapes, 3 MB of UTF-8 on the runner's wire: cut to the window.
        "a prompt of a million é and spaces",
        "/api/generate",
        {"model": MODEL, "prompt": "é " * 1_000_000, "raw": True, "stream": False,
         "options": {"num_predict": 1}},
        200,
        "",
    ),
    # Last: options fixed at load, so each of these reloads the model (as Ollama does).
    *(
        (
            f"{option} {value}",
            "/api/generate",
            {"model": MODEL, "prompt": "1, 2, 3,", "raw": True, "stream": False,
             "options": {option: value, "num_predict": 2, "temperature": 0}},
            200,
            "",
        )
        for option, value in [("num_thread", 1_000_000), ("num_batch", 1_000_000),
                              ("num_gpu", 1_000_000), ("main_gpu", 99)]
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input_is_answered_and_kills_nothing(
    server: ServerProcess, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    runners = server.runners()
    r = post(server, path, body)
    assert r.status_code == status, r.text
    if message:
        assert r.json() == {"error": message}
    assert server.proc.poll() is None, "the server died"
    if not set(LOAD_OPTIONS) & set(body.get("options", {})):
        assert server.runners() == runners, "the runner died or was replaced"
    # ... and it still answers.
    again = {"model": MODEL, "prompt": "1, 2,", "raw": True, "stream": False,
             "options": {"num_predict": 1, **body.get("options", {})}}  # fmt: skip
    assert post(server, "/api/generate", again).status_code == 200


LONG_INPUT = "why is the sky blue? " * 20


@pytest.mark.parametrize(
    ("options", "truncate", "status", "expected"),
    [
        ({"num_ctx": 8}, False, 400, {"error": "input exceeds maximum context length"}),
        # Room for a BOS and an EOS is kept (Ollama reads the "add" flags under the model's
        # architecture, where SmolLM2 has none: true), so two places are always taken.
        ({"num_ctx": 2}, True, 400,
         {"error": "input after truncation exceeds maximum context length"}),
        ({"num_ctx": 3}, True, 200, 1),
        ({"num_ctx": 9}, True, 200, 7),
    ],
)  # fmt: skip
def test_embed_truncation_follows_ollama(
    server: ServerProcess, options: dict[str, int], truncate: bool, status: int, expected: Any
) -> None:
    body = {"model": MODEL, "input": LONG_INPUT, "truncate": truncate, "options": options}
    r = post(server, "/api/embed", body)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["prompt_eval_count"] == expected
    else:
        assert r.json() == expected


def _tool(i: int) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": f"tool_{i}", "description": "does a thing " * 80,
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
    }}  # fmt: skip


def _turns(n: int, size: int) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}: " + "lorem ipsum " * size}
            for i in range(n)]  # fmt: skip


# Issue 29, item 9: requests that cost the sender little and the server much, unless the server
# works only on what it keeps. Each body is made once, when its case runs.
COSTLY: dict[str, tuple[str, Any]] = {
    "a 50 MB prompt": ("/api/generate", lambda: {
        "model": MODEL, "prompt": "hello world " * 4_200_000, "stream": False,
        "options": {"num_predict": 2}}),
    "a 6 MB context of 907,176 ids": ("/api/generate", lambda: {
        "model": MODEL, "prompt": "hi", "context": [46778] * 907_176, "stream": False,
        "options": {"num_predict": 2}}),
    "a 24 MB prompt of é": ("/api/generate", lambda: {
        "model": MODEL, "prompt": "é" * 12_000_000, "stream": False,
        "options": {"num_predict": 2}}),
    "a 1,000-message chat of 20 MB": ("/api/chat", lambda: {
        "model": MODEL, "messages": _turns(1001, 1700), "stream": False,
        "options": {"num_predict": 2}}),
    "a 5,000-message /v1/messages": ("/v1/messages", lambda: {
        "model": MODEL, "max_tokens": 2, "messages": _turns(5001, 3)}),
    "5 MB of Responses instructions": ("/v1/responses", lambda: {
        "model": MODEL, "max_output_tokens": 2, "instructions": "be brief. " * 520_000,
        "input": "hi"}),
    "a 4 MB tool list": ("/api/chat", lambda: {
        "model": TOOLS_MODEL, "messages": [{"role": "user", "content": "hi"}],
        "tools": [_tool(i) for i in range(3500)], "stream": False,
        "options": {"num_predict": 2}}),
    "a 10 MB tool list on /v1": ("/v1/chat/completions", lambda: {
        "model": TOOLS_MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}],
        "tools": [_tool(i) for i in range(9000)]}),
}  # fmt: skip


# What the server must do anyway for any of them: fill the context window with a prompt that
# is cut to fit (2,400 tokens into 512). The costly requests are timed against it, in the same
# run, rather than against a fixed number of seconds (the machine may be busy).
BASELINE = ("/api/generate", {"model": MODEL, "prompt": "hello world " * 1200, "stream": False,
                              "options": {"num_predict": 2}})  # fmt: skip
SMALL = {"model": MODEL, "prompt": "1, 2,", "raw": True, "stream": False,
         "options": {"num_predict": 2}}  # fmt: skip


def _beside_a_small_one(
    server: ServerProcess, path: str, body: bytes
) -> tuple[dict[str, Any], float]:
    """The answer to `body` (status, text, seconds) and the seconds a small request took, sent
    once the body is written (while the server reads or works on it)."""
    answer: dict[str, Any] = {}

    sent = threading.Event()  # the costly body is all written: the server reads or works on it

    def chunks() -> Iterator[bytes]:
        for at in range(0, len(body), 1 << 20):
            yield body[at : at + (1 << 20)]
        sent.set()

    def send() -> None:
        start = time.monotonic()
        # Its length declared, as a client sending a buffer would (not chunked).
        headers = {"Content-Length": str(len(body))}
        r = httpx.post(server.url + path, content=chunks(), headers=headers, timeout=300)
        answer.update(status=r.status_code, text=r.text[:300], seconds=time.monotonic() - start)

    costly = threading.Thread(target=send)
    costly.start()
    try:
        assert sent.wait(60), "the costly body was never sent"
        start = time.monotonic()
        small = post(server, "/api/generate", SMALL)
        small_seconds = time.monotonic() - start
    finally:
        costly.join()
    assert small.status_code == 200, small.text
    return answer, small_seconds


@pytest.fixture(scope="module")
def baseline(server: ServerProcess) -> tuple[float, float]:
    """The seconds the baseline takes on this server, and a small request beside it: measured
    once, for every costly case (each was timed against its own before; the margins below are
    for a busy machine either way)."""
    assert httpx.post(server.url + "/api/generate", json={"model": MODEL}, timeout=60).is_success
    base_path, base_body = BASELINE
    base, base_small = _beside_a_small_one(server, base_path, json.dumps(base_body).encode())
    assert base["status"] == 200, base
    return base["seconds"], base_small


@pytest.mark.parametrize("case", list(COSTLY))
def test_a_costly_request_is_answered_quickly_and_holds_up_no_one(
    server: ServerProcess, baseline: tuple[float, float], case: str
) -> None:
    """Each costly request costs about what a prompt that fills the window costs, whatever its
    size, and a small request beside it waits no longer than beside that prompt. (On a quiet
    2-core machine the baseline takes 1.4 to 3 s, the costly ones 2 to 3.7 s and the small request
    0.3 to 1.5 s beside them; the costly ones were unanswered after 120 to 300 s before the window
    was cut from the end it keeps.)"""
    path, make = COSTLY[case]
    # As clients send it: UTF-8, not JSON's escapes (the \u00e9 of 12 million é is 72 MB).
    body = json.dumps(make(), ensure_ascii=False).encode()
    warm = {"model": TOOLS_MODEL if "tool" in case else MODEL}
    assert httpx.post(server.url + "/api/generate", json=warm, timeout=60).status_code == 200
    runners = server.runners()
    base_seconds, base_small = baseline
    answer, small_seconds = _beside_a_small_one(server, path, body)
    assert answer["status"] == 200, answer
    # Seen with -s: the figures the issue asks for (seconds on this machine).
    print(
        f"\n{case}: answered in {answer['seconds']:.2f} s (baseline {base_seconds:.2f} s); "
        f"small request {small_seconds:.2f} s (beside the baseline {base_small:.2f} s)"
    )
    # Reading and decoding the body is work that grows with what is sent (50 MB of JSON takes
    # about a second here); everything after it must not. The margins are wide because the
    # machine may be shared: before the cut these requests took 120 to 300 s.
    assert answer["seconds"] < 3 * base_seconds + 10, (answer, base_seconds)
    assert small_seconds < 3 * base_small + 3, (
        f"the small request took {small_seconds:.1f} s beside {case}, "
        f"{base_small:.1f} s beside the baseline"
    )
    assert server.proc.poll() is None, "the server died"
    assert server.runners() == runners, "the runner died or was replaced"
