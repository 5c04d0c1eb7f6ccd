"""Simulation parts: fake models (real GGUF facts, no weights) and fake runners served in-process.

With `trio.testing.MockClock` they run the real scheduler in virtual time: tests use them, and so
can anyone comparing keep-alive, eviction or queue policies (see `benchmarks/scheduler.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from trio_ollama.gguf_info import GGUFInfo, TensorInfo
from trio_ollama.gocompat.format import GiB
from trio_ollama.runner.connection import RunnerConnection
from trio_ollama.runner.fake import FakeConfig, FakeEngine
from trio_ollama.runner.inprocess import InProcessRunner
from trio_ollama.runner.protocol import Load, Ready
from trio_ollama.scheduler import ModelSpec
from trio_ollama.scheduler.core import Startable
from trio_ollama.scheduler.devices import FakeDevices
from trio_ollama.scheduler.memory import LoadPlan


def fake_info(size: int, *, layers: int = 32, context_length: int = 8192) -> GGUFInfo:
    """GGUF facts for a llama-shaped model whose weights total `size` bytes."""
    per_layer = size // (layers + 1)
    tensors = [
        TensorInfo(f"blk.{i}.ffn.weight", "F16", (per_layer // 2,), 0, per_layer)
        for i in range(layers)
    ]
    tensors.append(TensorInfo("output.weight", "F16", (per_layer // 2,), 0, per_layer))
    metadata = {
        "general.architecture": "llama",
        "llama.block_count": layers,
        "llama.context_length": context_length,
        "llama.embedding_length": 64,
        "llama.attention.head_count": 8,
        "llama.attention.head_count_kv": 8,
        "llama.vocab_size": 256,
    }
    return GGUFInfo(
        version=3, metadata=metadata, tensors=tuple(tensors), data_offset=0, file_size=size
    )


def fake_model(
    name: str,
    size: int = GiB // 10,
    *,
    adapters: tuple[str, ...] = (),
    embedding_only: bool = False,
    info: GGUFInfo | None = None,
    **fake: Any,
) -> ModelSpec:
    """A model the fake engine serves; `fake` goes to `FakeConfig` (fail_load, load_seconds...).
    Its GGUF facts are `info` (a real header, say), else a llama shape weighing `size`."""
    return ModelSpec(
        name=name,
        model_path=f"/fake/{name}",
        info=info if info is not None else fake_info(size),
        adapters=adapters,
        embedding_only=embedding_only,
        extra=(("fake", fake),),
    )


@attrs.define
class FakeRunners:
    """A runner factory that serves fake engines in-process and remembers what it made.

    With `devices`, a loaded fake takes its memory out of their free memory until it unloads,
    as a real runner's allocations show in the OS's and the driver's figures.
    """

    devices: FakeDevices | None = None
    engines: list[tuple[Load, FakeEngine]] = attrs.field(factory=list)
    # Where the scheduler placed each load (its `loaded[model.key].plan`): with it, a load on GPUs
    # takes their memory as the estimate placed it; without, all of it comes out of RAM.
    plans: Callable[[ModelSpec], LoadPlan | None] | None = None

    def __call__(self, load: Load, model: ModelSpec) -> Startable:
        engine = FakeEngine(fake_config(model), in_process=True)
        self.engines.append((load, engine))
        if self.devices is None:
            return InProcessRunner(load, engine)
        plan = self.plans(model) if self.plans is not None else None
        return _Accounted(InProcessRunner(load, engine), self.devices, plan)

    @property
    def loads(self) -> list[str]:
        return [load.model_path.removeprefix("/fake/") for load, _ in self.engines]

    def live(self) -> list[FakeEngine]:
        """Engines still loaded (closed engines have been unloaded)."""
        return [engine for _, engine in self.engines if engine.loaded and not engine.closed]


def fake_config(model: ModelSpec) -> FakeConfig:
    """The fake engine's settings for a model made by `fake_model`: its size, its `fake`."""
    fake = {"weights_bytes": model.info.weights_size, "kv_bytes_per_ctx_token": 0}
    return FakeConfig(**{**fake, **dict(model.extra).get("fake", {})})


@attrs.define
class _Accounted:
    inner: Startable
    devices: FakeDevices
    plan: LoadPlan | None = None

    async def run(self, *, task_status: trio.TaskStatus[RunnerConnection]) -> None:
        give_back: Callable[[], None] | None = None
        try:
            async with trio.open_nursery() as nursery:
                client: RunnerConnection = await nursery.start(self.inner.run)
                assert client.ready is not None
                give_back = take_memory(self.devices, client.ready, self.plan)
                task_status.started(client)
        finally:
            if give_back is not None:
                give_back()


def take_memory(
    devices: FakeDevices, ready: Ready, plan: LoadPlan | None = None
) -> Callable[[], None]:
    """Take what a loaded runner holds out of the devices' free memory, as a real runner's
    allocations show in the driver's and the OS's figures; the function returned gives it back.

    With the scheduler's `plan` for a load on GPUs, each GPU gives what the memory estimate
    placed on it, and system RAM what it left there; else RAM gives what the runner reports."""
    on_gpus = plan.estimate.vram_by_gpu() if plan is not None and plan.gpus else {}
    in_ram = plan.estimate.system_size if on_gpus and plan is not None else ready.total_bytes
    for gpu, nbytes in on_gpus.items():
        devices.allocate(gpu, nbytes)
    devices.set_system_free(devices.system.free - in_ram)

    def give_back() -> None:
        for gpu, nbytes in on_gpus.items():
            devices.release(gpu, nbytes)
        devices.set_system_free(devices.system.free + in_ram)

    return give_back
