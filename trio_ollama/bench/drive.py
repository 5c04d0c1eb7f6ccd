"""Running a spec: each step's requests sent as its load mode says, over one connection pool,
with the server's `/metrics` read before and after each step when it has them.

Cancel the run (Ctrl-C in `trio-ollama bench run`) and what was measured is still there:
every request that finished, in the caller's list, and the step it stopped in marked.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable

import attrs
import httpx
import trio

from trio_ollama.bench.client import Outcome, run_one
from trio_ollama.bench.plan import Planned, Step, steps
from trio_ollama.bench.spec import Spec


@attrs.define
class StepResult:
    label: str
    concurrency: int | None
    planned: int
    outcomes: list[Outcome] = attrs.field(factory=list)
    wall: float = 0.0
    metrics_before: str | None = None
    metrics_after: str | None = None
    interrupted: bool = False


Progress = Callable[[str, int, int], None]


def stderr_progress(label: str, done: int, total: int) -> None:
    """A one-line progress bar on a terminal; nothing when stderr is not one."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(f"\r{label:<20} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end,
          file=sys.stderr, flush=True)  # fmt: skip


async def run_spec(
    spec: Spec, results: list[StepResult], progress: Progress = stderr_progress, raw: bool = False
) -> None:
    """Every step of `spec`, in order, each appended to `results` as it starts: whoever cancels
    the run still holds every request that finished (and the step it stopped in, marked)."""
    limits = httpx.Limits(
        max_connections=None, max_keepalive_connections=64 if spec.keepalive else 0
    )
    timeout = httpx.Timeout(spec.timeout, connect=30)
    async with httpx.AsyncClient(base_url=spec.target, limits=limits, timeout=timeout) as client:
        for step in steps(spec):
            result = StepResult(step.label, step.concurrency, len(step.requests))
            results.append(result)
            result.metrics_before = await _metrics(client)
            await _run_step(client, spec, step, result, progress, raw)
            result.metrics_after = await _metrics(client)


async def _run_step(
    client: httpx.AsyncClient, spec: Spec, step: Step, result: StepResult, progress: Progress,
    raw: bool,
) -> None:  # fmt: skip
    started = time.perf_counter()
    deadline = trio.current_time() + spec.load.duration if spec.load.duration else float("inf")

    async def one(plan: Planned) -> None:
        outcome = Outcome(plan.index, plan.model, time.perf_counter() - started,
                          planned=None if step.concurrency else plan.at,
                          disconnect=plan.disconnect)  # fmt: skip
        try:
            await run_one(client, spec.api, plan, outcome, spec.workload.disconnect, raw,
                          spec.timeout)  # fmt: skip
        finally:  # cut short too: what it measured stays, its error says so
            result.outcomes.append(outcome)
            progress(step.label, len(result.outcomes), len(step.requests))

    try:
        with trio.CancelScope(deadline=deadline) as limit:
            await dispatch(step, one)
    finally:
        result.wall = time.perf_counter() - started
        # Ended before every request was answered, and not by its own duration: cut.
        finished = sum(1 for o in result.outcomes if not o.error.startswith("cut:"))
        result.interrupted = finished < len(step.requests) and not limit.cancelled_caught


async def dispatch(step: Step, one: Callable[[Planned], Awaitable[None]]) -> None:
    """Send a step's requests as its load says: `concurrency` clients each taking the next
    request as its last one ends, or each request at its planned time. `one` sends a request;
    this returns when every one it started has ended."""
    async with trio.open_nursery() as nursery:
        if step.concurrency is not None:
            queue = iter(step.requests)

            async def worker() -> None:
                for plan in queue:
                    await one(plan)

            for _ in range(step.concurrency):
                nursery.start_soon(worker)
        else:
            t0 = trio.current_time()
            for plan in step.requests:
                await trio.sleep_until(t0 + plan.at)
                nursery.start_soon(one, plan)


async def _metrics(client: httpx.AsyncClient) -> str | None:
    """The server's Prometheus metrics, if it serves them."""
    try:
        r = await client.get("/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 and r.text.startswith("#") else None
