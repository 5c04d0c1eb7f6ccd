"""Scheduler invariants under random sequences of acquire, release, cancel, expire and time."""

from __future__ import annotations

import math
import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_ollama.config import Settings
from trio_ollama.config_file import ModelPolicy, Policies
from trio_ollama.gocompat.format import GiB
from trio_ollama.scheduler import LoadFailed, RunnerOptions, Scheduler, ServerBusy
from trio_ollama.scheduler.devices import FakeDevices, SystemMemory
from trio_ollama.testing.simulation import FakeRunners as FakeRunners
from trio_ollama.testing.simulation import fake_model

MODELS = [
    fake_model("a", GiB),
    fake_model("b", GiB),
    fake_model("c", GiB // 2),
    fake_model("d", 2 * GiB),
]
OPTIONS = [RunnerOptions(num_ctx=2048), RunnerOptions(num_ctx=4096)]
KEEP_ALIVES = [None, 0.0, 5.0, -1.0]
BUDGET = 3 * GiB
MAX_LOADED = 2

op = st.one_of(
    st.tuples(
        st.just("acquire"),
        st.integers(0, len(MODELS) - 1),
        st.integers(0, len(OPTIONS) - 1),
        st.integers(0, len(KEEP_ALIVES) - 1),
        st.integers(0, 3),  # priority
    ),
    st.tuples(st.just("release"), st.integers(0, 30)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("expire"), st.integers(0, len(MODELS) - 1)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 3.0, 10.0, 400.0])),
)


@attrs.define(eq=False)
class Request:
    release: trio.Event = attrs.field(factory=trio.Event)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    client: Any = None
    outcome: str = "waiting"


def check_invariants(sched: Scheduler, requests: list[Request], rec: FakeRunners) -> None:
    holding: dict[int, int] = {}
    for r in requests:
        if r.client is not None and not r.done.is_set():
            holding[id(r.client)] = holding.get(id(r.client), 0) + 1
    for runner in sched.loaded.values():
        assert runner.refcount >= 0
        assert runner.refcount == holding.get(id(runner.client), 0), "refcount == open scopes"
        assert runner.refcount <= runner.num_parallel
    assert sum(holding.values()) == sum(r.refcount for r in sched.loaded.values())
    assert len(sched.loaded) <= MAX_LOADED
    assert sum(r.size for r in sched.loaded.values()) <= BUDGET
    live = sorted(load.model_path for load, engine in rec.engines if not engine.closed)
    assert live == sorted(sched.loaded), "one runner per table entry, none outside the table"
    waiting = sum(1 for r in requests if r.outcome == "waiting" and not r.done.is_set())
    assert sched.waiting == waiting


# Ollama's rules, then the policies of the configuration file, which must keep every invariant.
POLICIES = {
    "ollama": Policies(),
    "fair": Policies(fair_queues=True, priority_aging=2.0),
    "cost": Policies(eviction="cost"),
    "fair+cost+pinned": Policies(
        fair_queues=True, eviction="cost",
        models={"c": ModelPolicy(pinned=True), "b": ModelPolicy(num_parallel=1, max_queue=2)},
    ),
}  # fmt: skip


async def scenario(
    ops: list[tuple[Any, ...]], clock: trio.testing.MockClock, policies: Policies
) -> None:
    devices = FakeDevices(system=SystemMemory(total=BUDGET, free=BUDGET, free_swap=0))
    rec = FakeRunners(devices)
    config = attrs.evolve(
        Settings.from_env({}),
        max_loaded_models=MAX_LOADED,
        num_parallel=2,
        max_queue=6,
        policies=policies,
    )
    sched = Scheduler(config, runner_factory=rec, devices=devices, cores=2)
    requests: list[Request] = []

    async def client(r: Request, model: Any, options: Any, keep_alive: Any, priority: int) -> None:
        with r.scope:
            try:
                async with sched.acquire(model, options, keep_alive, priority) as lease:
                    r.client, r.outcome = lease.runner, "served"
                    await r.release.wait()
            except (ServerBusy, LoadFailed) as exc:
                r.outcome = type(exc).__name__
        if r.outcome == "waiting":
            r.outcome = "cancelled"
        r.done.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        for step in ops:
            kind = step[0]
            if kind == "acquire":
                r = Request()
                requests.append(r)
                nursery.start_soon(
                    client, r, MODELS[step[1]], OPTIONS[step[2]], KEEP_ALIVES[step[3]], step[4]
                )
            elif kind in ("release", "cancel") and requests:
                r = requests[step[1] % len(requests)]
                r.release.set() if kind == "release" else r.scope.cancel()
            elif kind == "expire":
                sched.expire_model(MODELS[step[1]])
            elif kind == "advance":
                clock.jump(step[1])
            await trio.testing.wait_all_tasks_blocked()
            check_invariants(sched, requests, rec)
        # Everyone lets go: every request ends served, refused or cancelled; nothing hangs.
        for r in requests:
            r.release.set()
        for _ in range(50):
            await trio.testing.wait_all_tasks_blocked()
            if all(r.done.is_set() for r in requests):
                break
            clock.jump(1)
        assert all(r.done.is_set() for r in requests), [r.outcome for r in requests]
        check_invariants(sched, requests, rec)
        assert sched.waiting == 0
        assert sched._lanes == {}, "every lane ended with its queue"
        assert all(r.refcount == 0 for r in sched.loaded.values())
        forever = [r for r in sched.loaded.values() if math.isinf(r.keep_alive)]
        clock.jump(10_000)
        await trio.testing.wait_all_tasks_blocked()
        assert list(sched.loaded.values()) == forever, "only keep-alive-forever runners remain"
        nursery.cancel_scope.cancel()
    assert all(engine.closed for _, engine in rec.engines), "shutdown ended every runner"


@pytest.mark.parametrize("policies", list(POLICIES.values()), ids=list(POLICIES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40))
def test_invariants_hold_after_every_step(policies: Policies, ops: list[tuple[Any, ...]]) -> None:
    clock = trio.testing.MockClock()
    trio.run(scenario, ops, clock, policies, clock=clock)


async def test_a_thousand_requests_cancelled_at_random_points(autojump_clock: Any) -> None:
    rng = random.Random(1234)
    models = [fake_model(name, GiB // 4) for name in "abcde"]
    config = attrs.evolve(
        Settings.from_env({}), max_loaded_models=3, num_parallel=2, max_queue=2000
    )
    devices = FakeDevices(system=SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0))
    rec = FakeRunners()
    sched = Scheduler(config, runner_factory=rec, devices=devices, cores=2)
    outcomes = {"served": 0, "cancelled while waiting": 0, "cancelled while holding": 0}

    async def one() -> None:
        await trio.sleep(rng.uniform(0, 20))
        holding = False
        with trio.move_on_after(rng.uniform(0, 10)):
            async with sched.acquire(rng.choice(models), keep_alive=rng.choice([None, 1.0, 30.0])):
                holding = True
                await trio.sleep(rng.uniform(0, 3))
            holding = False
            outcomes["served"] += 1
            return
        outcomes["cancelled while holding" if holding else "cancelled while waiting"] += 1

    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        async with trio.open_nursery() as clients:
            for _ in range(1000):
                clients.start_soon(one)
        await trio.testing.wait_all_tasks_blocked()
        assert sum(outcomes.values()) == 1000
        assert all(n > 50 for n in outcomes.values()), outcomes
        assert sched.waiting == 0
        assert all(r.refcount == 0 for r in sched.loaded.values())
        await trio.sleep(301)  # past every keep-alive (the default is 5 minutes)
        assert sched.loaded == {}
        assert all(engine.closed for _, engine in rec.engines)
        nursery.cancel_scope.cancel()
