"""Scheduler rules, each as a short named test: the fake engine in-process, time from MockClock.

The `TestSched*` names follow Ollama's `server/sched_test.go`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from trio_ollama.config import Settings
from trio_ollama.gocompat.format import GiB
from trio_ollama.runner.protocol import Completion, Piece, Sampling
from trio_ollama.scheduler import (
    ERR_MAX_QUEUE,
    Lease,
    LoadFailed,
    RunnerOptions,
    Scheduler,
    ServerBusy,
    open_scheduler,
    policy,
)
from trio_ollama.scheduler.devices import FakeDevices, SystemMemory, fake_gpu
from trio_ollama.testing.simulation import FakeRunners as FakeRunners
from trio_ollama.testing.simulation import fake_info, fake_model

CPU = FakeDevices(system=SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0))


def settings(**overrides: Any) -> Settings:
    return attrs.evolve(Settings.from_env({}), **overrides)


@asynccontextmanager
async def scheduler(
    recorder: FakeRunners | None = None, devices: FakeDevices | None = None, **overrides: Any
) -> AsyncIterator[Scheduler]:
    async with open_scheduler(
        settings(**overrides),
        runner_factory=recorder or FakeRunners(),
        devices=devices or attrs.evolve(CPU),
        cores=2,
    ) as sched:
        yield sched


class Holder:
    """A request that holds its lease until told to let go."""

    def __init__(self, sched: Scheduler, model: Any, **kwargs: Any) -> None:
        self.sched, self.model, self.kwargs = sched, model, kwargs
        self.lease: Lease | None = None
        self.error: BaseException | None = None
        self.release = trio.Event()
        self.scope = trio.CancelScope()
        self.acquired = trio.Event()
        self.done = trio.Event()

    async def run(self) -> None:
        with self.scope:
            try:
                async with self.sched.acquire(self.model, **self.kwargs) as lease:
                    self.lease = lease
                    self.acquired.set()
                    await self.release.wait()
            except Exception as exc:
                self.error = exc
        self.done.set()


async def hold(nursery: trio.Nursery, sched: Scheduler, model: Any, **kwargs: Any) -> Holder:
    holder = Holder(sched, model, **kwargs)
    nursery.start_soon(holder.run)
    await trio.testing.wait_all_tasks_blocked()
    return holder


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


# ----- Ollama's sched_test.go


async def test_sched_init() -> None:
    async with scheduler() as sched:
        assert sched.loaded == {}


async def test_sched_load_failure_leaves_nothing_loaded(autojump_clock: Any) -> None:
    bad = fake_model("bad", fail_load="something failed to load model blah")
    async with scheduler() as sched, trio.open_nursery() as nursery:
        holder = await hold(nursery, sched, bad)
        await holder.done.wait()
        assert isinstance(holder.error, LoadFailed)
        assert "this model may be incompatible" in str(holder.error)
        assert sched.loaded == {}
        waited = fake_model("wait", fail_load="wait failure")
        holder = await hold(nursery, sched, waited)
        await holder.done.wait()
        assert "wait failure" in str(holder.error) and sched.loaded == {}


async def test_sched_load_success(autojump_clock: Any) -> None:
    model = fake_model("a", GiB)
    async with scheduler() as sched, trio.open_nursery() as nursery:
        holder = await hold(nursery, sched, model)
        assert holder.lease is not None
        runner = sched.loaded[model.key]
        assert runner.refcount == 1 and len(sched.loaded) == 1
        assert runner.ready is not None and runner.size == runner.ready.total_bytes
        holder.release.set()


async def test_sched_requests_same_model_same_request_share_a_runner(autojump_clock: Any) -> None:
    rec = FakeRunners()
    model = fake_model("a")
    async with scheduler(rec, num_parallel=2) as sched, trio.open_nursery() as nursery:
        a = await hold(nursery, sched, model)
        b = await hold(nursery, sched, model)
        assert a.lease is not None and b.lease is not None
        assert a.lease.runner is b.lease.runner
        assert rec.loads == ["a"] and sched.waiting == 0
        a.release.set()
        b.release.set()


async def test_sched_requests_simple_reload_same_model(autojump_clock: Any) -> None:
    rec = FakeRunners()
    async with scheduler(rec) as sched, trio.open_nursery() as nursery:
        a = await hold(nursery, sched, fake_model("a"))
        b = await hold(nursery, sched, fake_model("a", adapters=("/lora",)))
        assert b.lease is None, "B waits: the runner has other adapters and is busy"
        first_engine = rec.engines[0][1]
        a.release.set()
        await settle()
        assert b.lease is not None and b.lease.runner is not a.lease.runner  # type: ignore[union-attr]
        assert first_engine.closed and rec.loads == ["a", "a"]
        b.release.set()


async def test_sched_requests_multiple_loaded_models(autojump_clock: Any) -> None:
    gpu = fake_gpu(total=24 * GiB, free=12 * GiB)
    devices = FakeDevices([gpu], system=SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0))
    rec = FakeRunners()
    async with scheduler(rec, devices) as sched, trio.open_nursery() as nursery:
        a = await hold(nursery, sched, fake_model("a", 1 * GiB))
        assert len(sched.loaded) == 1
        b = await hold(nursery, sched, fake_model("b", 10 * GiB))
        assert len(sched.loaded) == 2
        c = await hold(nursery, sched, fake_model("c", 1 * GiB), options=RunnerOptions(num_gpu=0))
        assert len(sched.loaded) == 3 and sched.loaded["/fake/c"].plan.gpus == ()
        d = await hold(nursery, sched, fake_model("d", 13 * GiB))
        assert d.lease is None, "D does not fit next to A and B"
        a.release.set()
        await trio.sleep(6)  # the simulated GPU never shows A's memory back: the 5 s bound
        assert len(sched.loaded) == 2 and "/fake/a" not in sched.loaded  # idle A went first
        assert d.lease is None
        devices.set_free(0, 24 * GiB)  # once B is gone the GPU reports all of it free
        b.release.set()
        await trio.sleep(6)
        assert d.lease is not None
        assert sorted(sched.loaded) == ["/fake/c", "/fake/d"]
        assert [e.closed for _, e in rec.engines] == [True, True, False, False]
        c.release.set()
        d.release.set()


async def test_sched_get_runner_max_queue(autojump_clock: Any) -> None:
    async with scheduler(max_queue=1) as sched, trio.open_nursery() as nursery:
        slow = fake_model("a", load_seconds=1)
        first = Holder(sched, slow, keep_alive=0.002)
        nursery.start_soon(first.run)
        await settle()
        assert sched.waiting == 1 and first.lease is None
        with pytest.raises(ServerBusy) as info:
            async with sched.acquire(fake_model("b")):
                pass  # pragma: no cover
        assert str(info.value) == ERR_MAX_QUEUE
        await trio.sleep(1.5)
        assert first.lease is not None
        first.release.set()
        await trio.sleep(0.01)
        assert sched.loaded == {}, "A unloaded after its 2 ms keep-alive"
        bad = await hold(nursery, sched, fake_model("bad path", fail_load="bad path"))
        await bad.done.wait()
        assert "bad path" in str(bad.error) and sched.loaded == {}


async def test_sched_expire_runner(autojump_clock: Any) -> None:
    model = fake_model("foo")
    async with scheduler() as sched, trio.open_nursery() as nursery:
        holder = await hold(nursery, sched, model, keep_alive=120)
        runner = sched.loaded[model.key]
        assert runner.refcount == 1 and len(sched.loaded) == 1
        sched.expire_model(model)
        await settle()
        assert len(sched.loaded) == 1, "busy: it unloads when its last request leaves"
        holder.release.set()
        await settle()
        assert sched.loaded == {}


async def test_sched_premature_expired(autojump_clock: Any) -> None:
    model = fake_model("foo")
    async with scheduler() as sched, trio.open_nursery() as nursery:
        holder = await hold(nursery, sched, model, keep_alive=0.1)
        runner = sched.loaded[model.key]
        sched.expired_send.send_nowait(runner)  # an expiry while busy is harmless
        await settle()
        assert sched.loaded[model.key] is runner and runner.refcount == 1
        holder.release.set()
        await settle()
        assert model.key in sched.loaded
        await trio.sleep(0.2)
        assert sched.loaded == {}
        sched.finished_send.send_nowait(runner)  # a late finished event is harmless too
        sched.expired_send.send_nowait(runner)
        await settle()
        assert sched.loaded == {}


async def test_sched_use_loaded_runner_keep_alive_override(autojump_clock: Any) -> None:
    model = fake_model("a")
    async with scheduler() as sched, trio.open_nursery() as nursery:
        first = await hold(nursery, sched, model, keep_alive=1)
        runner = sched.loaded[model.key]
        assert runner.keep_alive == 1
        first.release.set()
        await settle()
        second = await hold(nursery, sched, model, keep_alive=2)
        assert runner.refcount == 1 and runner.keep_alive == 2
        second.release.set()
        await settle()
        released = trio.current_time()
        assert runner.expires_at == pytest.approx(released + 2)
        third = await hold(nursery, sched, model)  # no keep_alive: the runner keeps its own
        assert runner.keep_alive == 2
        third.release.set()


@attrs.define
class View:
    model: Any
    options: RunnerOptions = attrs.field(factory=RunnerOptions)
    refcount: int = 0
    keep_alive: float = 300.0
    dead: bool = False
    last_used: float = 0.0
    pinned: bool = False
    loaded_at: float = 0.0
    load_seconds: float = 1.0
    uses: int = 1
    recency: int = 0


def test_sched_find_runner_to_unload() -> None:
    r1 = View(fake_model("r1"), refcount=1, keep_alive=1)
    r2 = View(fake_model("r2"), keep_alive=2)
    assert policy.find_runner_to_unload([r1, r2]) is r2, "an idle runner goes first"
    r2.refcount = 1
    assert policy.find_runner_to_unload([r1, r2]) is r1, "then the shortest keep-alive"
    r3 = View(fake_model("r3"), keep_alive=1, last_used=5)
    r1.refcount = r3.refcount = 0
    assert policy.find_runner_to_unload([r3, r1]) is r1, "then the least recently used"
    assert policy.find_runner_to_unload([]) is None


def test_sched_needs_reload() -> None:
    model = fake_model("a")
    runner = View(model, options=RunnerOptions(num_gpu=10))
    same = RunnerOptions(num_gpu=10)
    assert policy.needs_reload(runner, fake_model("a", adapters=("/x",)), same)
    assert policy.needs_reload(runner, attrs.evolve(model, projectors=("/p",)), same)
    assert policy.needs_reload(runner, model, attrs.evolve(same, num_batch=1234))
    runner.dead = True
    assert policy.needs_reload(runner, model, same)
    runner.dead = False
    assert not policy.needs_reload(runner, model, same)
    assert policy.needs_reload(runner, model, RunnerOptions(num_gpu=99))
    assert not policy.needs_reload(runner, model, RunnerOptions(num_gpu=-1))


async def test_sched_unload_all_runners_on_shutdown(autojump_clock: Any) -> None:
    async with scheduler():
        pass  # nothing loaded: shutting down is still fine
    rec = FakeRunners()
    async with scheduler(rec, num_parallel=1) as sched:
        for name in ("a", "b"):
            async with sched.acquire(fake_model(name)):
                pass
        assert len(sched.loaded) == 2
    assert [engine.closed for _, engine in rec.engines] == [True, True]


async def test_sched_already_canceled(autojump_clock: Any) -> None:
    rec = FakeRunners()
    async with scheduler(rec) as sched:
        with trio.CancelScope() as scope:
            scope.cancel()
            async with sched.acquire(fake_model("a")):
                pass  # pragma: no cover
        await settle()
        assert rec.loads == [] and sched.waiting == 0


# ----- the rules beyond sched_test.go


async def test_fast_path_is_not_blocked_by_another_models_load(autojump_clock: Any) -> None:
    async with scheduler() as sched, trio.open_nursery() as nursery:
        loaded = fake_model("loaded")
        async with sched.acquire(loaded):
            pass
        nursery.start_soon(hold, nursery, sched, fake_model("slow", load_seconds=60))
        await trio.sleep(1)
        started = trio.current_time()
        async with sched.acquire(loaded):
            assert trio.current_time() - started == 0
        nursery.cancel_scope.cancel()


async def test_concurrent_cold_requests_share_one_load(autojump_clock: Any) -> None:
    rec = FakeRunners()
    model = fake_model("a", load_seconds=5)
    async with scheduler(rec, num_parallel=2) as sched, trio.open_nursery() as nursery:
        holders = [await hold(nursery, sched, model) for _ in range(5)]
        await trio.sleep(10)
        assert rec.loads == ["a"]
        assert sum(h.lease is not None for h in holders) == 2
        assert sched.waiting == 3
        for h in holders:
            h.release.set()
            await settle()
        assert all(h.lease is not None for h in holders) and sched.waiting == 0


async def test_max_loaded_models_evicts_the_least_recently_used(autojump_clock: Any) -> None:
    rec = FakeRunners()
    async with scheduler(rec, max_loaded_models=2) as sched:
        for name in ("a", "b"):
            async with sched.acquire(fake_model(name)):
                await trio.sleep(1)
        async with sched.acquire(fake_model("a")):
            pass  # a is now the more recently used
        async with sched.acquire(fake_model("c")):
            assert sorted(sched.loaded) == ["/fake/a", "/fake/c"]


async def test_default_max_loaded_models_is_three_per_gpu(autojump_clock: Any) -> None:
    async with scheduler() as sched:
        for name in "abcd":
            async with sched.acquire(fake_model(name)):
                pass
        assert sched.max_runners == 3 and len(sched.loaded) == 3


@pytest.mark.parametrize(
    ("keep_alive", "gone_after"),
    [(None, 300.0), (10.0, 10.0), (0.0, 0.0), (-1.0, math.inf)],
)
async def test_keep_alive(autojump_clock: Any, keep_alive: float | None, gone_after: float) -> None:
    model = fake_model("a")
    async with scheduler() as sched:
        async with sched.acquire(model, keep_alive=keep_alive):
            pass
        await settle()
        left = trio.current_time()
        if gone_after == 0:
            assert sched.loaded == {}
            return
        if math.isinf(gone_after):
            await trio.sleep(10**7)
            assert model.key in sched.loaded
            return
        await trio.sleep(gone_after - 0.01)
        assert model.key in sched.loaded
        await trio.sleep(0.02)
        assert sched.loaded == {}
        assert trio.current_time() - left == pytest.approx(gone_after, abs=0.02)


async def test_max_queue_counts_slot_waiters_and_forgets_cancelled_ones(
    autojump_clock: Any,
) -> None:
    model = fake_model("a")
    async with scheduler(max_queue=2, num_parallel=1) as sched, trio.open_nursery() as nursery:
        holder = await hold(nursery, sched, model)
        b = await hold(nursery, sched, model)
        c = await hold(nursery, sched, model)
        assert sched.waiting == 2
        with pytest.raises(ServerBusy):
            async with sched.acquire(model):
                pass  # pragma: no cover
        b.scope.cancel()
        await settle()
        assert sched.waiting == 1
        e = await hold(nursery, sched, model)
        assert sched.waiting == 2
        order = []
        for h in (holder, c, e):
            h.release.set()
            await settle()
            order.append(h.lease is not None)
        assert order == [True, True, True] and b.lease is None


async def test_waiters_for_one_runner_are_served_in_arrival_order(autojump_clock: Any) -> None:
    model = fake_model("a")
    served: list[int] = []
    async with scheduler(num_parallel=1) as sched, trio.open_nursery() as nursery:

        async def one(i: int) -> None:
            async with sched.acquire(model):
                served.append(i)
                await trio.sleep(1)

        for i in range(6):
            nursery.start_soon(one, i)
            await settle()
    assert served == list(range(6))


async def test_eviction_target_is_not_resurrected_by_new_requests(autojump_clock: Any) -> None:
    """Ollama #17408: requests for a draining runner kept it alive and the load waited forever."""
    rec = FakeRunners()
    a, b = fake_model("a"), fake_model("b")
    async with (
        scheduler(rec, max_loaded_models=1, num_parallel=4) as sched,
        trio.open_nursery() as nursery,
    ):
        first = await hold(nursery, sched, a)
        want_b = await hold(nursery, sched, b)  # evicting a: it drains
        assert sched.loaded[a.key].expiring
        late = [await hold(nursery, sched, a) for _ in range(3)]
        assert all(h.lease is None for h in late), "no new work for a draining runner"
        first.release.set()
        with trio.fail_after(60):
            await want_b.acquired.wait()
            want_b.release.set()
            for h in late:
                await h.acquired.wait()
                h.release.set()
    assert rec.loads == ["a", "b", "a"]


async def test_request_with_other_options_while_busy_is_served_after(autojump_clock: Any) -> None:
    """Ollama PR #14407: a reload request arriving while the runner is busy must not deadlock."""
    model = fake_model("a")
    async with scheduler(num_parallel=2) as sched, trio.open_nursery() as nursery:
        busy = await hold(nursery, sched, model, options=RunnerOptions(num_ctx=2048))
        other = await hold(nursery, sched, model, options=RunnerOptions(num_ctx=4096))
        assert other.lease is None
        same = await hold(nursery, sched, model, options=RunnerOptions(num_ctx=2048))
        assert same.lease is None, "the old runner drains; it takes no new requests"
        busy.release.set()
        with trio.fail_after(60):
            await other.acquired.wait()
            other.release.set()
            await same.acquired.wait()
        assert other.lease is not None and same.lease is not None
        assert other.lease.num_ctx == 4096 and same.lease.num_ctx == 2048
        same.release.set()


async def test_expired_busy_runner_is_not_stuck_stopping(autojump_clock: Any) -> None:
    """Ollama #14364: an expired runner whose request's client went away stayed forever."""
    model = fake_model("a")
    async with scheduler() as sched, trio.open_nursery() as nursery:
        holder = await hold(nursery, sched, model)
        sched.expire_model(model)
        await settle()
        assert sched.loaded[model.key].expiring
        holder.scope.cancel()  # the client hangs up mid-stream
        await settle()
        assert sched.loaded == {}


async def test_model_that_cannot_fit_even_alone(autojump_clock: Any) -> None:
    tiny = FakeDevices(system=SystemMemory(total=2 * GiB, free=1 * GiB, free_swap=0))
    async with scheduler(devices=tiny) as sched:
        with pytest.raises(LoadFailed, match=r"model requires more system memory \(.*\) than is"):
            async with sched.acquire(fake_model("big", 4 * GiB)):
                pass  # pragma: no cover
        assert sched.loaded == {}


async def test_embedding_models_get_one_slot(autojump_clock: Any) -> None:
    rec = FakeRunners()
    async with scheduler(rec, num_parallel=4) as sched:
        async with sched.acquire(fake_model("embed", embedding_only=True)):
            pass
        async with sched.acquire(fake_model("chat")):
            pass
    assert [(load.num_parallel, load.embedding) for load, _ in rec.engines] == [
        (1, True),
        (4, False),
    ]


async def test_runner_gets_the_flash_attention_the_estimate_counted_on(
    autojump_clock: Any,
) -> None:
    """OLLAMA_FLASH_ATTENTION asks; the model decides (Ollama's `SupportsFlashAttention`)."""
    gemma2 = fake_info(GiB // 10)
    gemma2 = attrs.evolve(
        gemma2,
        metadata={
            "general.architecture": "gemma2",
            **{k.replace("llama.", "gemma2."): v for k, v in gemma2.metadata.items()
               if k != "general.architecture"},
        },
    )  # fmt: skip
    rec = FakeRunners()
    async with scheduler(rec, flash_attention=True, kv_cache_type="q8_0") as sched:
        async with sched.acquire(fake_model("llama")):
            pass
        async with sched.acquire(fake_model("gemma2", info=gemma2)):
            pass
    assert [(load.flash_attention, load.kv_cache_type) for load, _ in rec.engines] == [
        (True, "q8_0"),
        (False, "f16"),  # llama.cpp would quantize nothing without flash attention
    ]
    assert not any(load.flash_attention_auto for load, _ in rec.engines), "it was said"


@pytest.mark.parametrize("said", [None, False])
async def test_unsaid_flash_attention_is_the_runners_to_measure_on_the_cpu(
    said: bool | None, autojump_clock: Any
) -> None:
    rec = FakeRunners()
    async with scheduler(rec, flash_attention=said) as sched, sched.acquire(fake_model("llama")):
        pass
    [(load, _)] = rec.engines
    assert (load.flash_attention, load.flash_attention_auto) == (False, said is None)


async def test_thread_budget(autojump_clock: Any) -> None:
    rec = FakeRunners()
    async with scheduler(rec) as sched, trio.open_nursery() as nursery:
        a = await hold(nursery, sched, fake_model("a"))
        engine_a = rec.engines[0][1]
        assert engine_a.n_threads == 2, "alone, a runner gets every core"
        b = await hold(nursery, sched, fake_model("b"))
        engine_b = rec.engines[1][1]
        await settle()
        assert (engine_a.n_threads, engine_b.n_threads) == (1, 1)
        a.release.set()
        await settle()
        assert engine_b.n_threads == 2
        b.release.set()


async def test_gpu_unload_waits_for_memory_to_come_back(autojump_clock: Any) -> None:
    gpu = fake_gpu(total=24 * GiB, free=20 * GiB)
    devices = FakeDevices([gpu], system=SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0))
    async with scheduler(devices=devices, max_loaded_models=1) as sched:
        async with sched.acquire(fake_model("a", 8 * GiB)):
            devices.set_free(0, 11 * GiB)  # the driver shows the memory taken
        started = trio.current_time()

        async def recover() -> None:
            await trio.sleep(2)
            devices.set_free(0, 20 * GiB)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(recover)
            async with sched.acquire(fake_model("b", 8 * GiB)):
                waited = trio.current_time() - started
        assert 2 <= waited < 3, "the next load waited for the VRAM to recover, not longer"
        async with sched.acquire(fake_model("c", 8 * GiB)):
            bounded = trio.current_time()
        assert bounded - (started + waited) <= 5.5, "a GPU that never recovers: 5 s at most"


async def test_dead_runner_fails_its_requests_and_is_reloaded(autojump_clock: Any) -> None:
    rec = FakeRunners()
    model = fake_model("a", crash_after_tokens=3, tokens_per_second=10)
    async with scheduler(rec) as sched:
        with pytest.raises(Exception, match="runner"):
            async with (
                sched.acquire(model) as lease,
                lease.runner.completion(Completion(id=0, prompt="x")) as stream,
            ):
                async for _ in stream:
                    pass
        await settle()
        assert sched.loaded == {}
        async with (
            sched.acquire(model) as lease,
            lease.runner.completion(
                Completion(id=0, prompt="x", sampling=Sampling(num_predict=2))
            ) as stream,
        ):
            pieces = [e async for e in stream if isinstance(e, Piece)]
        assert len(pieces) == 2 and rec.loads == ["a", "a"]


async def test_a_runner_that_cannot_start_fails_its_request_not_the_scheduler(
    autojump_clock: Any,
) -> None:
    rec = FakeRunners()

    def factory(load: Any, model: Any) -> Any:
        if model.name == "broken":
            raise OSError("cannot spawn: too many processes")
        return rec(load, model)

    async with open_scheduler(
        settings(), runner_factory=factory, devices=attrs.evolve(CPU), cores=2
    ) as sched:
        with pytest.raises(LoadFailed, match="too many processes"):
            async with sched.acquire(fake_model("broken")):
                pass  # pragma: no cover
        assert sched.loaded == {}
        async with sched.acquire(fake_model("fine")) as lease:
            assert lease.model.name == "fine"
