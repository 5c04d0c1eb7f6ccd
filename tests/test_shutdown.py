"""The graceful shutdown, end to end over loopback HTTP: `serve` with in-process fake runners.

When the trigger fires, requests in flight may finish within the grace period; when it ends, each
one still at work gets an answer (a last `{"error"}` line in a stream, a 503 before the response
has started) instead of a cut connection, and `serve` returns with every runner gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.ggufs import write_tiny_gguf
from tests.test_api_inprocess import CHATML, Engines
from trio_ollama.api.responses import SHUTTING_DOWN
from trio_ollama.api.server import serve
from trio_ollama.config import Settings
from trio_ollama.gocompat.format import GiB
from trio_ollama.runner.fake import FakeConfig
from trio_ollama.scheduler.devices import FakeDevices, SystemMemory
from trio_ollama.store import CreateRequest, Store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    store = Store(tmp_path / "models")
    digest, _ = store.write_blob_bytes(write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes())
    store.create("tiny", CreateRequest(files={"tiny.gguf": digest}, template=CHATML))
    return Settings.from_env({
        "OLLAMA_MODELS": str(tmp_path / "models"), "OLLAMA_HOST": "127.0.0.1:0",
        "OLLAMA_NUM_PARALLEL": "1", "OLLAMA_NOPRUNE": "1",
    })  # fmt: skip


class Served:
    """`serve` in a nursery with a trigger the test pulls; `ended` is set when it returns."""

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self.stop = trio.Event()
        self.ended = trio.Event()
        self.url = ""


async def open_served(
    nursery: trio.Nursery, settings: Settings, grace: float, **fake: Any
) -> Served:
    """`serve` on a loopback port, its fake engines made with `FakeConfig(**fake)`."""
    served = Served(Engines(FakeConfig(**fake)))
    devices = FakeDevices(system=SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0))

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(
                settings, shutdown_trigger=served.stop.wait, grace=grace, task_status=task_status,
                runner_factory=served.engines, devices=devices, cores=2,
            )  # fmt: skip
        finally:
            served.ended.set()

    binds: list[str] = await nursery.start(run)
    served.url = binds[0]
    return served


async def stream_lines(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], first: trio.Event | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """The status and every NDJSON line of a streamed answer; `first` is set at the first."""
    async with client.stream("POST", path, json=body) as response:
        lines = []
        async for line in response.aiter_lines():
            if line:
                lines.append(json.loads(line))
                if first is not None:
                    first.set()
        return response.status_code, lines


async def test_requests_at_work_when_the_grace_period_ends_get_an_answer(
    settings: Settings,
) -> None:
    results: dict[str, tuple[int, list[dict[str, Any]]]] = {}
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=0.5, tokens_per_second=20)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            streaming = trio.Event()

            async def call(key: str, path: str, body: dict[str, Any]) -> None:
                results[key] = await stream_lines(
                    client, path, body, streaming if key == "running" else None
                )

            long = {"model": "tiny", "prompt": "hi", "options": {"num_predict": 10_000}}
            nursery.start_soon(call, "running", "/api/generate", long)
            await streaming.wait()
            # One slot: these two wait behind the stream.
            nursery.start_soon(call, "queued stream", "/api/generate", long)
            message = {"role": "user", "content": "x"}
            chat = {"model": "tiny", "stream": False, "messages": [message]}
            nursery.start_soon(call, "queued chat", "/api/chat", chat)
            await trio.sleep(0.2)
            served.stop.set()
            triggered = trio.current_time()
            with trio.fail_after(5):
                await served.ended.wait()
            stopped_in = trio.current_time() - triggered

    status, lines = results["running"]
    assert status == 200 and len(lines) > 2
    assert all("response" in line and not line["done"] for line in lines[:-1])
    assert lines[-1] == {"error": SHUTTING_DOWN}
    assert results["queued stream"] == (503, [{"error": SHUTTING_DOWN}])
    assert results["queued chat"] == (503, [{"error": SHUTTING_DOWN}])
    # The grace period was waited for, and not much more.
    assert 0.5 <= stopped_in < 3, stopped_in
    assert all(engine.active == {} for engine in served.engines.made)


async def test_a_request_that_finishes_within_the_grace_period_is_answered_whole(
    settings: Settings,
) -> None:
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=5, tokens_per_second=20)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            streaming = trio.Event()
            result: list[tuple[int, list[dict[str, Any]]]] = []

            async def call() -> None:
                body = {"model": "tiny", "prompt": "hi", "options": {"num_predict": 10}}
                result.append(await stream_lines(client, "/api/generate", body, streaming))

            nursery.start_soon(call)
            await streaming.wait()
            served.stop.set()
            triggered = trio.current_time()
            with trio.fail_after(10):
                await served.ended.wait()
            stopped_in = trio.current_time() - triggered

    [(status, lines)] = result
    assert status == 200 and lines[-1]["done"] and lines[-1]["eval_count"] == 10
    assert "error" not in json.dumps(lines)
    # It ended when the stream did (10 tokens at 20 a second), not at the end of the grace.
    assert stopped_in < 3, stopped_in
