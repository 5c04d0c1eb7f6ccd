"""The scheduler with real runner subprocesses and the real model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio

from tests.procs import alive
from trio_ollama.config import Settings
from trio_ollama.gguf_info import read_gguf_info
from trio_ollama.runner.client import RunnerClient
from trio_ollama.runner.protocol import Completion, Piece, Sampling
from trio_ollama.scheduler import LoadFailed, ModelSpec, RunnerOptions, open_scheduler

# The real model through real runner processes.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_orphan_processes")]


def spec(path: Path, name: str) -> ModelSpec:
    return ModelSpec(name=name, model_path=str(path), info=read_gguf_info(path))


async def count_to(runner: RunnerClient, n: int) -> int:
    sampling = Sampling(temperature=0, num_predict=n)
    async with runner.completion(Completion(id=0, prompt="1, 2, 3,", sampling=sampling)) as s:
        return sum(1 for e in [e async for e in s] if isinstance(e, Piece))


async def test_two_real_models_and_keep_alive_zero(default_gguf: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(default_gguf, copy)
    a, b = spec(default_gguf, "a"), spec(copy, "b")
    options = RunnerOptions(num_ctx=512)
    async with open_scheduler(Settings.from_env({})) as sched:
        counts: list[int] = []

        async def use(model: ModelSpec) -> None:
            async with sched.acquire(model, options) as lease:
                counts.append(await count_to(lease.runner, 8))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(use, a)
            nursery.start_soon(use, b)
        assert counts == [8, 8] and len(sched.loaded) == 2
        pids = [r.client.pid for r in sched.loaded.values() if r.client is not None]
        assert all(pid is not None and alive(pid) for pid in pids)
        runner_a = sched.loaded[a.key]
        async with sched.acquire(a, options, keep_alive=0) as lease:
            pid_a = lease.runner.pid
        with trio.fail_after(10):
            await runner_a.unloaded.wait()
        assert a.key not in sched.loaded
        assert pid_a is not None and not alive(pid_a)
        assert b.key in sched.loaded
    assert not any(alive(p) for p in pids if p is not None), "shutdown ended every runner"


@pytest.fixture
def broken_model(tmp_path: Path, default_gguf: Path) -> ModelSpec:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(default_gguf.read_bytes()[:2_000_000])  # header intact, weights cut
    info = read_gguf_info(default_gguf)
    return ModelSpec(name="broken:latest", model_path=str(broken), info=info)


async def test_broken_model_file(broken_model: ModelSpec) -> None:
    model = broken_model
    async with open_scheduler(Settings.from_env({})) as sched:
        with pytest.raises(LoadFailed) as info:
            async with sched.acquire(model, RunnerOptions(num_ctx=256)):
                pass  # pragma: no cover
        assert "this model may be incompatible" in str(info.value)
        assert "ollama pull broken:latest" in str(info.value)
        assert sched.loaded == {}
