"""The scheduler: loads, shares, batches, evicts and unloads runners (Ollama's rules on Trio).

`Scheduler.acquire(model)` holds a slot of a loaded runner for the length of a block; the
`Lease` it gives has the runner as a `RunnerConnection`, which takes a `Completion` (with its
`Sampling`) and streams `Piece`s, then a `Done`. Its errors: `ServerBusy`, `LoadFailed` and
`SchedulerClosed` (all `SchedulerError`) from `acquire`, `RunnerError` (`RunnerGoneError` when
the runner died) from the runner. The seams for tests and simulation: a `RunnerFactory` of
`Startable` runners, `Devices`, and `SchedulerEvents` for an observer.
"""

from trio_ollama.runner.client import RunnerError, RunnerGoneError
from trio_ollama.runner.connection import CompletionEvents, RunnerConnection
from trio_ollama.runner.protocol import Completion, Done, Piece, RunnerOptions, Sampling
from trio_ollama.scheduler.core import (
    Lease,
    Runner,
    RunnerFactory,
    Scheduler,
    Startable,
    open_scheduler,
)
from trio_ollama.scheduler.devices import Devices
from trio_ollama.scheduler.types import (
    ERR_MAX_QUEUE,
    LoadFailed,
    ModelSpec,
    SchedulerClosed,
    SchedulerError,
    SchedulerEvents,
    ServerBusy,
)

__all__ = [
    "ERR_MAX_QUEUE",
    "Completion",
    "CompletionEvents",
    "Devices",
    "Done",
    "Lease",
    "LoadFailed",
    "ModelSpec",
    "Piece",
    "Runner",
    "RunnerConnection",
    "RunnerError",
    "RunnerFactory",
    "RunnerGoneError",
    "RunnerOptions",
    "Sampling",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerError",
    "SchedulerEvents",
    "ServerBusy",
    "Startable",
    "open_scheduler",
]
