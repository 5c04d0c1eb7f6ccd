"""Where the runner's time goes: llama.cpp's `llama_decode` and sampling, against the Python
around them (the step's bookkeeping, the protocol, Trio), for N concurrent greedy streams.

    .venv/bin/python -m benchmarks.step_profile [--clients 1,8] [--tokens 128]

The real engine runs in this process behind the real serving loop and client (`InProcessRunner`:
the same protocol and frames as a subprocess, over an in-memory stream), with the llama.cpp
calls wrapped in timers. Python's share is what a faster runner could win; the rest is
llama.cpp's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import trio

from benchmarks.runner import PARALLEL
from benchmarks.serve import NUM_CTX, counting
from trio_ollama.runner.engine import LlamaEngine
from trio_ollama.runner.inprocess import InProcessRunner
from trio_ollama.runner.protocol import Completion, Load, Sampling
from trio_ollama.store.default_model import fetch_default_gguf


def _real() -> dict[str, Callable[..., Any]]:
    import llama_cpp

    return {"decode": llama_cpp.llama_decode, "sample": llama_cpp.llama_sampler_sample}


REAL = _real()


def timed(spent: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            spent[key] += time.perf_counter() - started

    return wrapper


async def profile(n_streams: int, n_tokens: int, round_: int) -> dict[str, float]:
    import llama_cpp

    engine = LlamaEngine()
    spent = {"decode": 0.0, "sample": 0.0, "step": 0.0}
    # This process is the benchmark's own: the module's two calls are timed for the engine.
    llama_cpp.llama_decode = timed(spent, "decode", REAL["decode"])
    llama_cpp.llama_sampler_sample = timed(spent, "sample", REAL["sample"])
    engine.step_sync = timed(spent, "step", engine.step_sync)  # type: ignore[method-assign]
    load = Load(model_path=str(fetch_default_gguf()), num_ctx=NUM_CTX, num_parallel=PARALLEL)
    sampling = Sampling(temperature=0, num_predict=n_tokens, repeat_penalty=1.0)
    async with trio.open_nursery() as nursery:
        client = await nursery.start(InProcessRunner(load, engine).run)

        async def one(i: int) -> None:
            request = Completion(
                id=0, prompt=counting(1 + 37 * i + 5000 * round_), sampling=sampling
            )
            async with client.completion(request) as events:
                async for _ in events:
                    pass

        started = time.perf_counter()
        async with trio.open_nursery() as streams:
            for i in range(n_streams):
                streams.start_soon(one, i)
        spent["wall"] = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    print(f"{'clients':>7}{'wall s':>9}{'decode':>9}{'sample':>9}{'step py':>9}{'outside':>9}"
          f"{'python %':>10}")  # fmt: skip
    for n in (int(x) for x in args.clients.split(",")):
        s = trio.run(profile, n, args.tokens, n)
        step_python = s["step"] - s["decode"] - s["sample"]
        outside = s["wall"] - s["step"]
        share = 100 * (step_python + outside) / s["wall"]
        print(f"{n:>7}{s['wall']:>9.2f}{s['decode']:>9.2f}{s['sample']:>9.3f}"
              f"{step_python:>9.3f}{outside:>9.3f}{share:>9.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
