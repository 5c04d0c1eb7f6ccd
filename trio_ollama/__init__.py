"""trio-ollama: an Ollama-compatible model server on Trio, usable as a library.

Two ways in, both from your own Trio program (docs/api.md has examples that run):

- `serve(settings)`: the whole server, as `trio-ollama serve` runs it, in your nursery:
  `addresses = await nursery.start(serve, settings)` returns once it listens.
- `open_scheduler(settings)`: the scheduler alone, without HTTP. `scheduler.acquire(model)`
  holds a runner slot for a block; its `Lease.runner` takes a `Completion` and streams `Piece`s
  then a `Done`. Models come from the `Store` (`model_spec(store.show(name))`).

Everything here is typed; nothing else in the package is promised to stay as it is, except
`trio_ollama.testing` (fake models and runners in virtual time, as `trio.testing`) and
`trio_ollama.sim` (the simulator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import trio

from trio_ollama import scheduler as _scheduler
from trio_ollama.config import Settings
from trio_ollama.scheduler import (
    Completion,
    CompletionEvents,
    Devices,
    Done,
    Lease,
    LoadFailed,
    ModelSpec,
    Piece,
    RunnerConnection,
    RunnerError,
    RunnerFactory,
    RunnerGoneError,
    RunnerOptions,
    Sampling,
    Scheduler,
    SchedulerClosed,
    SchedulerError,
    SchedulerEvents,
    ServerBusy,
)
from trio_ollama.specs import model_spec
from trio_ollama.store import ModelNotFoundError, Store, StoreError
from trio_ollama.version import __version__


def open_scheduler(
    settings: Settings | None = None,
    *,
    runner_factory: RunnerFactory | None = None,
    devices: Devices | None = None,
    cores: int | None = None,
    events: SchedulerEvents | None = None,
) -> AbstractAsyncContextManager[Scheduler]:
    """A running scheduler for the length of an `async with` block; every runner it started
    ends with the block.

    `settings` default to the `OLLAMA_*` environment (`Settings.from_env()`). The rest are
    seams: `runner_factory` makes runners (the default spawns `python -m trio_ollama.runner`;
    `trio_ollama.testing` has fake ones), `devices` reports GPUs and memory (the default asks
    NVML and /proc), `cores` is the CPU budget shared by the runners decoding at once (default:
    the CPUs this process may use), and `events` hears of waits, loads, unloads and refusals.
    """
    return _scheduler.open_scheduler(
        settings, runner_factory=runner_factory, devices=devices, cores=cores, events=events
    )


async def serve(
    settings: Settings | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    grace: float | None = None,
    runner_factory: RunnerFactory | None = None,
    devices: Devices | None = None,
    cores: int | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve Ollama's API on `settings.host` until cancelled, or until `shutdown_trigger`
    returns.

    Start it with `await nursery.start(serve, settings)`: that returns the addresses bound
    (`["http://127.0.0.1:11434"]`) once the server listens. Cancelling the nursery stops the
    server and every runner at once. After `shutdown_trigger` returns, the server takes no new
    connections, lets the requests in flight finish for `grace` seconds (default 10), answers
    those still at work with a 503 (or a last `{"error"}` line in a stream), then returns.
    `runner_factory`, `devices` and `cores` are `open_scheduler`'s.
    """
    # The HTTP stack (Quart, anycorn) is imported only by those who serve.
    from trio_ollama.api import server

    await server.serve(
        settings,
        shutdown_trigger=shutdown_trigger,
        grace=server.GRACE_SECONDS if grace is None else grace,
        task_status=task_status,
        runner_factory=runner_factory,
        devices=devices,
        cores=cores,
    )


__all__ = [
    "Completion",
    "CompletionEvents",
    "Done",
    "Lease",
    "LoadFailed",
    "ModelNotFoundError",
    "ModelSpec",
    "Piece",
    "RunnerConnection",
    "RunnerError",
    "RunnerGoneError",
    "RunnerOptions",
    "Sampling",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerError",
    "ServerBusy",
    "Settings",
    "Store",
    "StoreError",
    "__version__",
    "model_spec",
    "open_scheduler",
    "serve",
]
