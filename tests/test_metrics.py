"""`GET /metrics` scraped with prometheus_client's own parser, during and after real HTTP requests
to `serve` (loopback, in-process fake runners): values, not just names. The real model and a
SIGKILLed runner process are in `test_api.py`."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.ggufs import write_tiny_gguf
from tests.inprocess import CHATML, open_served, stream_lines
from trio_ollama.api.metrics import Metrics
from trio_ollama.config import Settings
from trio_ollama.gocompat.format import GiB
from trio_ollama.scheduler import open_scheduler
from trio_ollama.scheduler.devices import FakeDevices, SystemMemory
from trio_ollama.store import CreateRequest, Store

MODEL = "tiny:latest"


def make_settings(tmp_path: Path, **env: str) -> Settings:
    store = Store(tmp_path / "models")
    for name, vocab in (("tiny", 16), ("other", 17)):
        gguf = write_tiny_gguf(tmp_path / f"{name}.gguf", vocab=vocab)
        digest, _ = store.write_blob_bytes(gguf.read_bytes())
        store.create(name, CreateRequest(files={"m.gguf": digest}, template=CHATML))
    return Settings.from_env({
        "OLLAMA_MODELS": str(tmp_path / "models"), "OLLAMA_HOST": "127.0.0.1:0",
        "OLLAMA_NOPRUNE": "1", **env,
    })  # fmt: skip


class Scrape:
    """One scrape, parsed: `value(name, **labels)` is the sample's value (0 when absent)."""

    def __init__(self, text: str) -> None:
        self.samples = [
            s for family in text_string_to_metric_families(text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        found = [
            s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()
        ]
        return sum(found)


async def scrape(client: httpx.AsyncClient) -> Scrape:
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)


async def test_counters_and_histograms_equal_the_requests_sent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OLLAMA_NUM_PARALLEL="2")
    answers: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            for i in range(3):
                body = {"model": "tiny", "prompt": f"hi {i}", "options": {"num_predict": 4 + i}}
                status, lines = await stream_lines(client, "/api/generate", body)
                assert status == 200
                answers.append(lines[-1])
            for _ in range(2):
                body = {"model": "tiny", "stream": False, "options": {"num_predict": 3},
                        "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
                r = await client.post("/api/chat", json=body)
                assert r.status_code == 200
                answers.append(r.json())
            assert (await client.post("/api/generate", json={"model": "nope"})).status_code == 404
            bad = await client.post("/api/generate", content=b"{not json")
            assert bad.status_code == 400
            m = await scrape(client)
            served.stop.set()

    generate = {"model": MODEL, "endpoint": "/api/generate"}
    assert m.value("trio_ollama_requests_total", **generate, status="200") == 3
    assert m.value("trio_ollama_requests_total", endpoint="/api/chat", status="200") == 2
    assert m.value("trio_ollama_requests_total", model="", status="404") == 1
    assert m.value("trio_ollama_requests_total", endpoint="/api/generate", status="400") == 1
    assert m.value("trio_ollama_requests_rejected_total", reason="bad_request") == 1
    assert m.value("trio_ollama_request_duration_seconds_count", **generate) == 3
    # Five generations: five first tokens, the rest are gaps; every token counted.
    generated = sum(a["eval_count"] for a in answers)
    assert generated == 4 + 5 + 6 + 3 + 3
    assert m.value("trio_ollama_time_to_first_token_seconds_count", model=MODEL) == 5
    assert m.value("trio_ollama_inter_token_latency_seconds_count", model=MODEL) == generated - 5
    assert m.value("trio_ollama_generated_tokens_total", model=MODEL) == generated
    prompt = sum(a["prompt_eval_count"] for a in answers)
    assert m.value("trio_ollama_prompt_tokens_total", model=MODEL) == prompt > 0
    assert m.value("trio_ollama_queue_wait_seconds_count", model=MODEL) == 5
    assert m.value("trio_ollama_loads_total", model=MODEL, result="ok") == 1
    assert m.value("trio_ollama_load_duration_seconds_count", model=MODEL) == 1
    assert m.value("trio_ollama_runners_loaded") == 1
    assert m.value("trio_ollama_slots", model=MODEL, state="total") == 2
    assert m.value("trio_ollama_slots", model=MODEL, state="in_use") == 0
    assert m.value("trio_ollama_runner_memory_bytes", model=MODEL, kind="weights") > 0
    assert m.value("process_resident_memory_bytes") > 0


async def test_the_waiting_gauge_and_ps_show_the_queue_while_requests_are_held(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, OLLAMA_NUM_PARALLEL="1")
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=0.2, tokens_per_second=50)
        async with (
            httpx.AsyncClient(base_url=served.url, timeout=10) as client,
            trio.open_nursery() as calls,
        ):
            streaming = trio.Event()
            long = {"model": "tiny", "prompt": "hi", "options": {"num_predict": 10_000}}
            calls.start_soon(stream_lines, client, "/api/generate", long, streaming)
            await streaming.wait()
            for _ in range(3):  # one slot: these wait behind the stream
                calls.start_soon(stream_lines, client, "/api/generate", long)
            with trio.fail_after(5):
                while True:
                    m = await scrape(client)
                    if m.value("trio_ollama_requests_waiting", model=MODEL) == 3:
                        break
                    await trio.sleep(0.02)
            assert m.value("trio_ollama_requests_running", model=MODEL) == 1
            assert m.value("trio_ollama_slots", model=MODEL, state="in_use") == 1
            ps = (await client.get("/api/ps")).json()["models"]
            queue = [(p["requests_running"], p["requests_waiting"], p["num_parallel"]) for p in ps]
            assert queue == [(1, 3, 1)]
            served.stop.set()  # the grace period ends them all with an answer


async def unloads(client: httpx.AsyncClient, reason: str, model: str = MODEL) -> float:
    return (await scrape(client)).value("trio_ollama_unloads_total", model=model, reason=reason)


async def until_unloaded(client: httpx.AsyncClient, reason: str, model: str = MODEL) -> None:
    with trio.fail_after(5):
        while True:
            if await unloads(client, reason, model) >= 1:
                return
            await trio.sleep(0.02)


async def test_unload_reasons_are_the_ones_the_test_caused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OLLAMA_MAX_LOADED_MODELS="1")
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            once = {"model": "tiny", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
            # keep-alive: a 0.2 s keep-alive runs out.
            r = await client.post("/api/generate", json={**once, "keep_alive": "200ms"})
            assert r.status_code == 200
            await until_unloaded(client, "keep_alive")
            # requested: keep_alive 0 with no prompt.
            assert (await client.post("/api/generate", json=once)).status_code == 200
            await client.post("/api/generate", json={"model": "tiny", "keep_alive": 0})
            await until_unloaded(client, "requested")
            # evicted: one model at most, and another is asked for.
            assert (await client.post("/api/generate", json=once)).status_code == 200
            r = await client.post("/api/generate", json={**once, "model": "other"})
            assert r.status_code == 200
            await until_unloaded(client, "evicted_max_models")
            # reload: the same model with another load option.
            r = await client.post("/api/generate", json={**once, "options": {"num_ctx": 64}})
            assert r.status_code == 200
            await client.post("/api/generate", json={**once, "options": {"num_ctx": 96}})
            await until_unloaded(client, "reload")
            m = await scrape(client)
            served.stop.set()
    # Each reason once, and nothing counted twice (the eviction is the "tiny" runner's).
    counted = {
        (s.labels["model"], s.labels["reason"]): s.value
        for s in m.samples if s.name == "trio_ollama_unloads_total"
    }  # fmt: skip
    assert counted == {
        (MODEL, "keep_alive"): 1, (MODEL, "requested"): 1, (MODEL, "evicted_max_models"): 1,
        ("other:latest", "evicted_max_models"): 1, (MODEL, "reload"): 1,
    }  # fmt: skip
    assert m.value("trio_ollama_loads_total", model=MODEL, result="ok") == 5


async def test_a_runner_that_crashes_is_counted_as_crashed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, crash_after_tokens=5)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            body = {"model": "tiny", "prompt": "hi", "options": {"num_predict": 50}}
            status, lines = await stream_lines(client, "/api/generate", body)
            assert status == 200 and "error" in lines[-1]
            await until_unloaded(client, "crashed")
            served.stop.set()


async def test_metrics_off_records_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, TRIO_OLLAMA_METRICS="0")
    assert settings.metrics is False
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            body = {"model": "tiny", "prompt": "hi", "stream": False}
            assert (await client.post("/api/generate", json=body)).status_code == 200
            m = await scrape(client)
            served.stop.set()
    assert m.value("trio_ollama_requests_total") == 0
    assert m.value("trio_ollama_time_to_first_token_seconds_count") == 0
    # State is read from the scheduler whatever the switch says.
    assert m.value("trio_ollama_runners_loaded") == 1


async def test_each_request_is_one_log_line_with_its_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    caplog.set_level(logging.INFO, logger="trio_ollama")
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            body = {"model": "tiny", "prompt": "hi", "stream": False, "keep_alive": 0,
                    "options": {"num_predict": 3}}  # fmt: skip
            reply = (await client.post("/api/generate", json=body)).json()
            assert (await client.get("/nowhere")).status_code == 404
            await until_unloaded(client, "requested")
            served.stop.set()
    lines = [r for r in caplog.records if r.name == "trio_ollama.requests"]
    lines = [r for r in lines if not r.getMessage().startswith("GET /metrics")]
    assert [r.getMessage() for r in lines] == ["POST /api/generate 200", "GET /nowhere 404"]
    generate, nowhere = (vars(r) for r in lines)
    assert (generate["route"], generate["model"]) == ("/api/generate", MODEL)
    assert generate["prompt_tokens"] == reply["prompt_eval_count"]
    assert generate["generated_tokens"] == reply["eval_count"] == 3
    assert 0 <= generate["queue_wait"] <= generate["duration"]
    assert nowhere["route"] == "/nowhere" and "model" not in nowhere
    # The scheduler's events carry their reasons too.
    unloaded = [r for r in caplog.records if r.getMessage() == "model unloaded"]
    assert [vars(r)["reason"] for r in unloaded] == ["requested"]


async def test_the_dashboard_asks_only_for_metrics_the_server_has(tmp_path: Path) -> None:
    dashboard = json.loads(
        (Path(__file__).parent.parent / "docs/grafana-dashboard.json").read_text()
    )
    asked = {
        name
        for panel in dashboard["panels"] for target in panel["targets"]
        for name in re.findall(r"trio_ollama_\w+", target["expr"])
    }  # fmt: skip
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            body = {"model": "tiny", "prompt": "hi", "stream": False}
            assert (await client.post("/api/generate", json=body)).status_code == 200
            text = (await client.get("/metrics")).text
            served.stop.set()
    # A family's samples: its name, and _total, _bucket, _count, _sum after it. A labelled
    # counter nothing has counted yet (no unload so far) has its family and no sample.
    families = list(text_string_to_metric_families(text))
    known = {sample.name for family in families for sample in family.samples}
    known |= {family.name + suffix for family in families for suffix in ("", "_total")}
    assert len(asked) >= 12 and asked <= known, asked - known


async def test_an_eviction_for_memory_is_counted_as_such(autojump_clock: Any) -> None:
    """The real scheduler in virtual time with simulated GPUs: B does not fit beside idle A."""
    from tests.test_scheduler import FakeRunners, fake_gpu, fake_model, hold, settings

    metrics = Metrics()
    system = SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0)
    devices = FakeDevices([fake_gpu(total=24 * GiB, free=12 * GiB)], system=system)
    async with (
        open_scheduler(settings(), runner_factory=FakeRunners(), devices=devices, cores=2,
                       events=metrics) as sched,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        metrics.watch(sched)
        a = await hold(nursery, sched, fake_model("a", 10 * GiB))
        a.release.set()
        devices.set_free(0, 2 * GiB)  # what the GPU reports with A on it
        b = await hold(nursery, sched, fake_model("b", 10 * GiB))
        devices.set_free(0, 24 * GiB)  # A's memory shows free once it is gone
        with trio.fail_after(60):
            await b.acquired.wait()
        b.release.set()
        m = Scrape(metrics.exposition().decode())
    assert m.value("trio_ollama_unloads_total", model="a", reason="evicted_memory") == 1
    assert m.value("trio_ollama_loads_total", result="ok") == 2


async def test_refusals_a_pending_load_and_the_openai_routes_are_counted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OLLAMA_NUM_PARALLEL="1", OLLAMA_MAX_QUEUE="2")
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=0.2, tokens_per_second=50,
                                   load_seconds=0.5)  # fmt: skip
        async with (
            httpx.AsyncClient(base_url=served.url, timeout=10) as client,
            trio.open_nursery() as calls,
        ):
            long = {"model": "tiny", "prompt": "hi", "options": {"num_predict": 10_000}}
            for _ in range(2):  # both wait for the load (the pending queue)
                calls.start_soon(stream_lines, client, "/api/generate", long)
            with trio.fail_after(5):
                while True:
                    m = await scrape(client)
                    if m.value("trio_ollama_requests_waiting", model=MODEL) == 2:
                        break
                    await trio.sleep(0.01)
            assert m.value("trio_ollama_runners_loaded") == 0, "still loading"
            # The queue holds two: a third is refused.
            busy = await client.post("/api/generate", json={**long, "stream": False})
            assert busy.status_code == 503
            m = await scrape(client)
            served.stop.set()
    assert m.value("trio_ollama_requests_rejected_total", reason="queue_full") == 1
    assert m.value("trio_ollama_requests_total", model=MODEL, status="503") == 1


async def test_the_openai_routes_are_counted_and_a_failed_load_too(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=0.2, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            body = {"model": "tiny", "max_tokens": 3, "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                events = [line async for line in r.aiter_lines() if line.startswith("data: ")]
            assert r.status_code == 200 and events[-1] == "data: [DONE]"
            served.engines.config = attrs.evolve(served.engines.config, fail_load="no weights")
            failed = await client.post("/v1/chat/completions", json={**body, "model": "other"})
            assert failed.status_code == 500
            m = await scrape(client)
            served.stop.set()
    ok = {"endpoint": "/v1/chat/completions", "model": MODEL, "status": "200"}
    assert m.value("trio_ollama_requests_total", **ok) == 1
    assert m.value("trio_ollama_time_to_first_token_seconds_count", model=MODEL) == 1
    assert m.value("trio_ollama_generated_tokens_total", model=MODEL) == 3
    failed_route = {"endpoint": "/v1/chat/completions", "model": "other:latest", "status": "500"}
    assert m.value("trio_ollama_requests_total", **failed_route) == 1
    assert m.value("trio_ollama_requests_rejected_total", reason="load_failed") == 1
    assert m.value("trio_ollama_loads_total", model="other:latest", result="failed") == 1


def models_in(m: Scrape) -> set[str]:
    return {s.labels["model"] for s in m.samples if "model" in s.labels}


async def test_a_deleted_model_takes_its_series_along(tmp_path: Path) -> None:
    """Deleted and never loaded: its series go at once. Deleted while its runner is loaded (a
    delete does not unload): they stay while it is, and go when it unloads. Deleted, then made
    again: the new model's series stay."""
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1000)
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:

            async def copy(name: str) -> None:
                r = await client.post("/api/copy", json={"source": "tiny", "destination": name})
                assert r.status_code == 200

            async def delete(name: str) -> None:
                r = await client.request("DELETE", "/api/delete", json={"model": name})
                assert r.status_code == 200

            async def unload_and_wait() -> None:
                # The copies share tiny's weights, so this unloads the copy's runner.
                await client.post("/api/generate", json={"model": "tiny", "keep_alive": 0})
                with trio.fail_after(5):
                    while True:
                        if (await scrape(client)).value("trio_ollama_runners_loaded") == 0:
                            return
                        await trio.sleep(0.02)

            await copy("shown")
            assert (await client.post("/api/show", json={"model": "shown"})).status_code == 200
            assert "shown:latest" in models_in(await scrape(client))
            await delete("Shown")  # any casing names it
            assert "shown:latest" not in models_in(await scrape(client))

            await copy("gone")
            once = {"model": "gone", "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
            assert (await client.post("/api/generate", json=once)).status_code == 200
            await delete("gone")
            m = await scrape(client)
            assert m.value("trio_ollama_loads_total", model="gone:latest", result="ok") == 1
            assert m.value("trio_ollama_runners_loaded") == 1
            await unload_and_wait()
            assert "gone:latest" not in models_in(await scrape(client))

            await copy("again")
            body = {**once, "model": "again"}
            assert (await client.post("/api/generate", json=body)).status_code == 200
            await delete("again")
            await copy("again")  # a model of that name again, served by the old runner
            await unload_and_wait()
            m = await scrape(client)
            served.stop.set()
    assert m.value("trio_ollama_requests_total", model="again:latest", status="200") == 1
    assert m.value("trio_ollama_unloads_total", model="again:latest", reason="requested") == 1
    assert models_in(m) >= {"again:latest", MODEL}
