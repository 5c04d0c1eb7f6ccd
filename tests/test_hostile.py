"""Hostile input against the real server and the real model: each case gets its status and
text, and the server process and its runner are the same before and after (nothing a client
sends may kill either). Issue 10's cases that are fixed so far; more join as they are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from trio_ollama.options import LOAD_OPTIONS
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model

pytestmark = pytest.mark.slow

MODEL = "smollm2:135m"
VOCAB = 49152


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Iterator[ServerProcess]:
    models = tmp_path_factory.mktemp("hostile") / "models"
    ensure_default_model(Store(models))
    # A 1,024-token window: the cases that fill it (cut to fit) prefill a quarter of the default.
    proc = ServerProcess(models, {"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_CONTEXT_LENGTH": "1024"})
    try:
        # Load the model once, so that every case below meets the same runner.
        httpx.post(proc.url + "/api/generate", json={"model": MODEL}, timeout=60)
        yield proc
    finally:
        proc.stop()


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
