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

from tests.inprocess import open_served, stream_lines, tiny_settings
from trio_ollama.api.responses import SHUTTING_DOWN
from trio_ollama.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return tiny_settings(tmp_path, OLLAMA_NUM_PARALLEL="1")


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
