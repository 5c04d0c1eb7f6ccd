"""The scheduler: loads, shares, batches, evicts and unloads runners (Ollama's rules on Trio)."""

from trio_ollama.runner.protocol import RunnerOptions
from trio_ollama.scheduler.core import Lease, Runner, Scheduler, open_scheduler
from trio_ollama.scheduler.types import (
    ERR_MAX_QUEUE,
    LoadFailed,
    ModelSpec,
    SchedulerClosed,
    SchedulerError,
    ServerBusy,
)

__all__ = [
    "ERR_MAX_QUEUE",
    "Lease",
    "LoadFailed",
    "ModelSpec",
    "Runner",
    "RunnerOptions",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerError",
    "ServerBusy",
    "open_scheduler",
]
