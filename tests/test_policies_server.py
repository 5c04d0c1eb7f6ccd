"""The configuration file through the real server: `serve` with a TOML file preloads the real
model (and loads it again when its runner process is killed), `/api/ps` and `/api/show` report
the settings that apply, and requests carry a `priority` on the native and OpenAI APIs."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.procs import alive, poll_until
from tests.server import ServerProcess
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model

MODEL = "smollm2:135m"
CONFIG = """
[scheduler]
fair_queues = true
priority_aging = "20s"

[models."smollm2:135m"]
num_parallel = 3
pinned = true
preload = true
priority = 1

[models.absent]
preload = true
"""
POLICY = {
    "num_parallel": 3,
    "keep_alive": -1,
    "max_queue": 512,
    "pinned": True,
    "preload": True,
    "priority": 1,
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("policies")
    ensure_default_model(Store(root / "models"))
    config = root / "trio-ollama.toml"
    config.write_text(CONFIG)
    server = ServerProcess(root / "models", {"TRIO_OLLAMA_CONFIG": str(config)})
    try:
        yield server
    finally:
        server.stop()


def _ps(url: str) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = httpx.get(url + "/api/ps", timeout=30).json()["models"]
    return models


def _wait_loaded(server: ServerProcess, not_pid: int | None = None) -> int:
    """The runner's pid, once the model shows as loaded (by a runner other than `not_pid`)."""
    runners: list[int] = []

    def shown() -> bool:
        runners[:] = [p for p in server.runners() if p != not_pid and alive(p)]
        return bool(runners) and bool(_ps(server.url))

    poll_until(shown, 60, "the preloaded model never showed as loaded", every=0.1)
    return runners[0]


def test_preload_pinned_model_is_loaded_without_a_request(server: ServerProcess) -> None:
    _wait_loaded(server)
    (entry,) = _ps(server.url)
    assert entry["name"] == MODEL
    assert entry["num_parallel"] == 3
    assert entry["policy"] == POLICY
    assert int(entry["expires_at"][:4]) > 2200, "pinned: kept forever, as keep_alive -1 shows"


def test_show_reports_the_models_policy(server: ServerProcess) -> None:
    shown = httpx.post(server.url + "/api/show", json={"model": MODEL}, timeout=30).json()
    assert shown["policy"] == POLICY


def test_requests_carry_a_priority(server: ServerProcess) -> None:
    body = {"model": MODEL, "prompt": "1, 2, 3,", "stream": False, "priority": 5,
            "options": {"num_predict": 3, "temperature": 0}}  # fmt: skip
    r = httpx.post(server.url + "/api/generate", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["eval_count"] == 3
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False,
            "priority": -2, "options": {"num_predict": 2}}  # fmt: skip
    assert httpx.post(server.url + "/api/chat", json=chat, timeout=60).status_code == 200
    bad = httpx.post(server.url + "/api/generate", json={**body, "priority": "high"}, timeout=30)
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "json: cannot unmarshal string into Go struct field "
        "GenerateRequest.priority of type int"
    }
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused") as client:
        answer = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
            extra_body={"priority": 3},
        )  # fmt: skip
    assert answer.usage is not None and answer.usage.completion_tokens == 2


def test_a_preloaded_model_whose_runner_dies_is_loaded_again(server: ServerProcess) -> None:
    pid = _wait_loaded(server)
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    new_pid = _wait_loaded(server, not_pid=pid)
    assert new_pid != pid
    assert time.monotonic() - started < 30
    r = httpx.post(server.url + "/api/generate", json={"model": MODEL, "prompt": "1, 2,",
                   "stream": False, "options": {"num_predict": 2}}, timeout=60)  # fmt: skip
    assert r.status_code == 200
