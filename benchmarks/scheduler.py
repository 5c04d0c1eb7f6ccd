"""Scheduler figures: overhead per acquire, latency under 10,000 requests, two real models at once.

    .venv/bin/python -m benchmarks.scheduler [--requests 10000] [--tokens 96]

1. acquire+release operations per second on a loaded model (fake runner in-process);
2. p50/p99 time from request to runner with 10,000 concurrent requests over 50 fake models;
3. combined decode tokens/s of two real models (SmolLM2 and a byte-different copy, so two
   runners) streaming at once, against one alone, with the thread budget and without it.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import attrs
import trio

from trio_ollama.config import Settings
from trio_ollama.gguf_info import read_gguf_info
from trio_ollama.gocompat.format import GiB
from trio_ollama.runner.protocol import Completion, Piece, Sampling
from trio_ollama.scheduler import ModelSpec, RunnerOptions, Scheduler, open_scheduler
from trio_ollama.scheduler.devices import FakeDevices, SystemMemory
from trio_ollama.store.default_model import fetch_default_gguf
from trio_ollama.testing.simulation import FakeRunners as FakeRunners
from trio_ollama.testing.simulation import fake_model

ROOMY = SystemMemory(total=512 * GiB, free=512 * GiB, free_swap=0)


async def acquire_release_rate(n: int) -> float:
    model = fake_model("a")
    settings = attrs.evolve(Settings.from_env({}), num_parallel=4)
    async with open_scheduler(
        settings, runner_factory=FakeRunners(), devices=FakeDevices(system=ROOMY)
    ) as sched:
        async with sched.acquire(model):
            pass  # loaded
        started = time.perf_counter()
        for _ in range(n):
            async with sched.acquire(model):
                pass
        elapsed = time.perf_counter() - started
    return n / elapsed


async def latency(n_requests: int, n_models: int) -> tuple[float, float, float]:
    models = [fake_model(f"m{i}", GiB // 8) for i in range(n_models)]
    settings = attrs.evolve(
        Settings.from_env({}),
        num_parallel=4,
        max_queue=n_requests * 2,
        max_loaded_models=n_models,
    )
    waits: list[float] = []
    rng = random.Random(7)
    async with open_scheduler(
        settings, runner_factory=FakeRunners(), devices=FakeDevices(system=ROOMY)
    ) as sched:

        async def one() -> None:
            started = time.perf_counter()
            async with sched.acquire(rng.choice(models)):
                waits.append(time.perf_counter() - started)
                await trio.sleep(0.001)

        wall = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(n_requests):
                nursery.start_soon(one)
        wall = time.perf_counter() - wall
    q = statistics.quantiles(waits, n=100)
    return q[49], q[98], wall


async def stream_tokens(sched: Scheduler, model: ModelSpec, tokens: int) -> list[float]:
    prompt = ", ".join(str(i) for i in range(1, 21)) + ","
    stamps: list[float] = []
    sampling = Sampling(temperature=0, num_predict=tokens)
    async with (
        sched.acquire(model, RunnerOptions(num_ctx=1024)) as lease,
        lease.runner.completion(Completion(id=0, prompt=prompt, sampling=sampling)) as stream,
    ):
        async for event in stream:
            if isinstance(event, Piece):
                stamps.append(time.perf_counter())
    return stamps


def steady_rate(all_stamps: list[list[float]]) -> float:
    start = max(s[0] for s in all_stamps)
    end = min(s[-1] for s in all_stamps)
    inside = sum(1 for s in all_stamps for t in s if start < t <= end)
    return inside / (end - start)


async def two_models(tokens: int, cores: int | None) -> tuple[float, float]:
    gguf = fetch_default_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.gguf"
        shutil.copyfile(gguf, copy)
        info = read_gguf_info(gguf)
        a = ModelSpec(name="a", model_path=str(gguf), info=info)
        b = ModelSpec(name="b", model_path=str(copy), info=info)
        async with open_scheduler(Settings.from_env({}), cores=cores) as sched:
            for m in (a, b):  # load both first: only decoding is measured
                async with sched.acquire(m, RunnerOptions(num_ctx=1024)):
                    pass
            alone = steady_rate([await stream_tokens(sched, a, tokens)])
            both: list[list[float]] = []

            async def run(m: ModelSpec) -> None:
                both.append(await stream_tokens(sched, m, tokens))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, a)
                nursery.start_soon(run, b)
            return alone, steady_rate(both)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    rate = trio.run(acquire_release_rate, args.ops)
    print(f"acquire+release on a loaded model       : {rate:10.0f} ops/s")
    p50, p99, wall = trio.run(latency, args.requests, args.models)
    print(
        f"{args.requests} concurrent requests, {args.models} models : "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms to a runner ({wall:.1f} s in all)"
    )
    alone, both = trio.run(two_models, args.tokens, None)
    print(f"one real model streaming alone          : {alone:7.1f} tok/s")
    print(f"two real models at once, thread budget  : {both:7.1f} tok/s combined")
    print(f"  ratio two / one                       : {both / alone:7.2f}  (target >= 1.0)")
    alone_x, both_x = trio.run(two_models, args.tokens, 4)
    print(f"two at once, no budget (2 threads each) : {both_x:7.1f} tok/s combined")
    print(f"  ratio two / one                       : {both_x / alone_x:7.2f}")


if __name__ == "__main__":
    main()
