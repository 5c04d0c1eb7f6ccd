"""A spec's requests against the real scheduler, in virtual time.

Each request does what the HTTP layer does for a generation: `Scheduler.acquire` for its model,
then a completion on the runner it was given; the load generator's hang-ups are cancellations
at the same points. Times are `trio.current_time()` on a `MockClock` that jumps whenever every
task waits, so a simulated hour costs only the scheduler's and the fake runners' own work.

A simulation's result is a function of its spec and machine, whatever order Trio runs the
tasks of one virtual moment in: a request takes a turn (`trio_ollama.testing.turns`) before it
asks for a slot and before it gives its slot back, and a direct runner decides what its next
step admits without waiting for anyone (`SimulatedEngine`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import trio
import trio.testing

from trio_ollama.bench.client import Outcome
from trio_ollama.bench.drive import StepResult, dispatch
from trio_ollama.bench.plan import Planned, Step, steps
from trio_ollama.bench.spec import Spec
from trio_ollama.config import Settings
from trio_ollama.gocompat.format import GiB
from trio_ollama.routing import ServerLoad, affinity_order
from trio_ollama.runner.client import RunnerError
from trio_ollama.runner.protocol import Completion, Piece, Sampling
from trio_ollama.scheduler import Lease, ModelSpec, Scheduler, SchedulerError, open_scheduler
from trio_ollama.scheduler.devices import (
    FakeDevices,
    GPUInfo,
    SystemMemory,
    fake_gpu,
)
from trio_ollama.scheduler.memory import LoadPlan
from trio_ollama.sim.machine import GPUProfile, Machine, ModelProfile, with_headers
from trio_ollama.testing.direct import SimulatedRunners, TimedStream
from trio_ollama.testing.simulation import FakeRunners, fake_model
from trio_ollama.testing.turns import ASK, LEAVE, Turns

log = logging.getLogger(__name__)


def simulate(
    spec: Spec, machine: Machine, *, on_scheduler: Callable[[Scheduler], None] | None = None,
    transport: str = "direct",
) -> list[StepResult]:  # fmt: skip
    """Every step of `spec` on `machine`, in virtual time; the result is the load generator's.
    `on_scheduler` is shown the scheduler (tests check it is the server's own class).
    `transport`: "direct" (`trio_ollama.testing.direct`), or "protocol", the fake engine behind
    the real runner protocol (every token a frame: slower, for checking the direct one)."""
    if transport not in ("direct", "protocol"):
        raise ValueError(f"transport: {transport!r} is not direct or protocol")
    machine = with_headers(machine)  # a profile made in code may name a GGUF too
    results: list[StepResult] = []
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(_simulate, spec, machine, results, on_scheduler, transport, clock=clock)
    return results


async def _simulate(
    spec: Spec, machine: Machine, results: list[StepResult],
    on_scheduler: Callable[[Scheduler], None] | None, transport: str,
) -> None:  # fmt: skip
    settings = Settings.from_env({"OLLAMA_NOPRUNE": "1", **machine.env}, config=machine.config)
    memory = int(machine.memory_gib * GiB)
    models: dict[str, ModelSpec] = {}

    def model(name: str) -> ModelSpec:
        if name not in models:
            models[name] = model_of(name, machine.profile(name))
        return models[name]

    async with contextlib.AsyncExitStack() as stack:
        schedulers = []
        for _ in range(machine.servers):
            devices = FakeDevices(
                gpu_list=[_gpu(i, gpu) for i, gpu in enumerate(machine.gpus)],
                system=SystemMemory(total=memory, free=memory, free_swap=0),
            )
            factory = SimulatedRunners(devices) if transport == "direct" else FakeRunners(devices)
            opened = open_scheduler(
                settings, runner_factory=factory, devices=devices, cores=machine.cores
            )
            scheduler = await stack.enter_async_context(opened)
            # A runner takes its memory where this scheduler's estimate placed it.
            factory.plans = partial(_plan_of, scheduler)
            if on_scheduler is not None:
                on_scheduler(scheduler)
            schedulers.append(scheduler)
        route = _router(schedulers, machine.routing, spec.seed)
        turns = Turns()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(turns.run)
            for step in steps(spec):
                result = StepResult(step.label, step.concurrency, len(step.requests))
                results.append(result)
                await _run_step(route, turns, spec, step, result, model)
            nursery.cancel_scope.cancel()


def model_of(name: str, p: ModelProfile) -> ModelSpec:
    """The model the scheduler is asked for: the profile's real GGUF header when it names one,
    else a synthetic one of its size; the fake engine runs it at the profile's costs."""
    return fake_model(
        name, int(p.size_gib * GiB), info=p.info, load_seconds=p.load_seconds,
        tokens_per_second=p.tokens_per_second, prompt_per_second=p.prompt_per_second,
        batch_slowdown=p.batch_slowdown, fail_load=p.fail_load,
        crash_after_tokens=p.crash_after_tokens,
    )  # fmt: skip


def _gpu(index: int, gpu: GPUProfile) -> GPUInfo:
    size = int(gpu.vram_gib * GiB)
    return fake_gpu(
        index, total=size, name=gpu.name, library=gpu.library, integrated=gpu.integrated
    )


def _plan_of(scheduler: Scheduler, model: ModelSpec) -> LoadPlan | None:
    runner = scheduler.loaded.get(model.key)
    return runner.plan if runner is not None else None


def _router(
    schedulers: list[Scheduler], routing: str, seed: int
) -> Callable[[Planned, ModelSpec], Scheduler]:
    """Which server takes a request: one at random (seeded by the request), or one that has
    its model loaded, the least busy of those, else the one with the fewest models loaded."""

    def route(plan: Planned, model: ModelSpec) -> Scheduler:
        if len(schedulers) == 1:
            return schedulers[0]
        if routing == "random":
            return random.Random(f"{seed}:route:{plan.index}").choice(schedulers)
        loads = [
            ServerLoad({key: r.refcount for key, r in s.loaded.items()}, s.waiting)
            for s in schedulers
        ]
        return schedulers[affinity_order(loads, model.key)[0]]

    return route


async def _run_step(
    route: Callable[[Planned, ModelSpec], Scheduler], turns: Turns, spec: Spec, step: Step,
    result: StepResult, model: Callable[[str], ModelSpec],
) -> None:  # fmt: skip
    started = trio.current_time()
    deadline = started + spec.load.duration if spec.load.duration else math.inf

    async def one(plan: Planned) -> None:
        out = Outcome(plan.index, plan.model, trio.current_time() - started,
                      planned=None if step.concurrency else plan.at,
                      disconnect=plan.disconnect)  # fmt: skip
        try:
            await _request(route, turns, spec, plan, out, model(plan.model))
        finally:
            result.outcomes.append(out)

    with trio.CancelScope(deadline=deadline):
        await dispatch(step, one)
    result.wall = trio.current_time() - started


async def _request(
    route: Callable[[Planned, ModelSpec], Scheduler], turns: Turns, spec: Spec, plan: Planned,
    out: Outcome, model: ModelSpec,
) -> None:  # fmt: skip
    d = spec.workload.disconnect
    sent = trio.current_time()
    hang_up_at = math.inf
    if plan.disconnect == "queue":
        hang_up_at = sent + d.queue_s
    elif plan.disconnect == "prefill":
        hang_up_at = sent + d.prefill_s
    finished = False
    out.error = "cut: the run ended first"
    try:
        with trio.CancelScope(deadline=hang_up_at) as hang_up:
            try:
                await turns.take((ASK, plan.index))
                scheduler = route(plan, model)  # on its turn: the servers' state is settled
                async with scheduler.acquire(model, priority=plan.priority) as lease:
                    # The HTTP layer sends its status with the first token; until then the
                    # request may still leave the queue.
                    out.load_s = lease.load_duration
                    try:
                        finished = await _stream(lease, spec, plan, out, sent, hang_up)
                    except RunnerError as exc:  # the runner died under it: a last error line
                        out.status = out.status or 500
                        out.error = str(exc)
                    await turns.take((LEAVE, plan.index))
            except SchedulerError as exc:
                out.status = 503 if "busy" in str(exc) else 500
                out.error = str(exc)
        if hang_up.cancelled_caught:
            out.disconnected = True
            out.error = ""
    finally:
        out.e2e = trio.current_time() - sent
        if out.status == 200 and not (finished or out.error or out.disconnected):
            out.error = "cut: the run ended first"  # mid-stream: answered, but not whole


async def _stream(
    lease: Lease, spec: Spec, plan: Planned, out: Outcome, sent: float,
    hang_up: trio.CancelScope,
) -> bool:  # fmt: skip
    """The completion, as a client reads it; whether it reached `Done`."""
    d = spec.workload.disconnect
    sampling = Sampling(num_predict=plan.max_tokens, **_sampling(plan.options))
    request = Completion(id=0, prompt=plan.prompt or str(plan.messages), sampling=sampling)
    last = sent
    async with lease.runner.completion(request) as events:
        timed = events if isinstance(events, TimedStream) else None
        if timed is not None:  # the tokens a hang-up waits for, on time
            if hang_up.deadline < math.inf:
                timed.watch(1)
            if plan.disconnect == "after_tokens":
                timed.watch(d.after_k)
        async for event in events:
            now = trio.current_time() if timed is None else timed.at
            if not isinstance(event, Piece):
                out.prompt_tokens = event.prompt_eval_count
                out.output_tokens = event.eval_count
                out.error = ""
                return True
            if out.ttft is None:
                out.status = 200  # as the HTTP layer answers: at the first token
                out.error = ""
                out.ttft = now - sent
                hang_up.deadline = math.inf  # answered: too late for both
            else:
                out.gaps.append(now - last)
            last = now
            out.chunks += 1
            if plan.disconnect == "after_tokens" and out.chunks >= d.after_k:
                out.disconnected = True
                return False
    out.error = ""
    return False


def _sampling(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in ("temperature", "seed", "top_k", "top_p")}
