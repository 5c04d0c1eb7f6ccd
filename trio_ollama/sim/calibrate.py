"""`trio-ollama simulate --calibrate`: a model's costs measured through the real runner on this
machine, written as a machine file, so that a simulation of "this machine" rests on measurement.

Measured, each as the median of a few tries, greedy, with the server's own load settings:
- the load time (the runner process started, the model loaded);
- prompt processing, in bytes a second (the fake engine charges prompts by their bytes);
- one sequence's decode speed;
- how much longer a step takes with `batch` sequences than with one (`batch_slowdown`).
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

import trio

from trio_ollama.config import Settings
from trio_ollama.cpus import available_cpus
from trio_ollama.runner.connection import RunnerConnection
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Completion, Load, Piece, Sampling
from trio_ollama.sim.machine import Machine, ModelProfile

TRIES = 3
PROMPT = " ".join(f"{i}, the river flows into the valley." for i in range(60))  # ~500 tokens


def counting(start: int) -> str:
    return ", ".join(str(i) for i in range(start, start + 20)) + ","


async def _gaps(runner: RunnerConnection, prompts: list[str], tokens: int) -> list[float]:
    """Median gap between tokens of each stream, all streams at once."""
    sampling = Sampling(temperature=0, num_predict=tokens, repeat_penalty=1.0)
    medians: list[float] = []

    async def one(prompt: str) -> None:
        stamps: list[float] = []
        async with runner.completion(Completion(id=0, prompt=prompt, sampling=sampling)) as s:
            async for event in s:
                if isinstance(event, Piece):
                    stamps.append(time.perf_counter())
        # The steady part: after every stream has its prompt done.
        gaps = [b - a for a, b in itertools.pairwise(stamps)][tokens // 4 :]
        medians.append(statistics.median(gaps))

    async with trio.open_nursery() as nursery:
        for prompt in prompts:
            nursery.start_soon(one, prompt)
    return medians


async def measure(
    model_path: str, size: int, settings: Settings, batch: int, tries: int = TRIES
) -> ModelProfile:
    loads, prompt_rates, singles, batched = [], [], [], []
    load = Load(model_path=model_path, num_ctx=settings.context_length, num_parallel=batch)
    for attempt in range(tries):
        started = time.perf_counter()
        async with open_runner(load) as runner:
            loads.append(time.perf_counter() - started)
            prompt = f"{attempt}. {PROMPT}"  # never the prompt cache's
            sampling = Sampling(temperature=0, num_predict=1)
            started = time.perf_counter()
            async with runner.completion(Completion(id=0, prompt=prompt, sampling=sampling)) as s:
                async for _ in s:
                    break
            prompt_rates.append(len(prompt.encode()) / (time.perf_counter() - started))
            singles += await _gaps(runner, [counting(1000 * attempt + 1)], 48)
            batched += await _gaps(
                runner, [counting(100_000 * (attempt + 1) + 500 * i) for i in range(batch)], 48
            )
    single = statistics.median(singles)
    step = statistics.median(batched)
    return ModelProfile(
        size_gib=size / 2**30,
        load_seconds=statistics.median(loads),
        tokens_per_second=1 / single,
        prompt_per_second=statistics.median(prompt_rates),
        batch_slowdown=max(0.0, (step / single - 1) / (batch - 1)),
    )


def machine_toml(machine: Machine) -> str:
    lines = [f"memory_gib = {machine.memory_gib:.1f}", f"cores = {machine.cores}", "", "[env]"]
    lines += [f'{key} = "{value}"' for key, value in machine.env.items()]
    for name, p in machine.models.items():
        lines += ["", f'[models."{name}"]', f"size_gib = {p.size_gib:.4f}",
                  f"load_seconds = {p.load_seconds:.3f}",
                  f"tokens_per_second = {p.tokens_per_second:.2f}",
                  f"prompt_per_second = {p.prompt_per_second:.1f}",
                  f"batch_slowdown = {p.batch_slowdown:.4f}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def calibrate(
    name: str, model_path: str, settings: Settings, batch: int = 4, tries: int = TRIES
) -> Machine:
    size = Path(model_path).stat().st_size
    profile = trio.run(measure, model_path, size, settings, batch, tries)
    memory = _memory_gib()
    env = {"OLLAMA_NUM_PARALLEL": str(settings.effective_num_parallel),
           "OLLAMA_CONTEXT_LENGTH": str(settings.context_length)}  # fmt: skip
    return Machine(memory_gib=memory, cores=available_cpus(), env=env, models={name: profile})


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 16.0
