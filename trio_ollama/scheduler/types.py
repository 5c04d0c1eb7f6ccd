"""Values the scheduler is asked about, and the errors it answers with."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import attrs

from trio_ollama.gguf_info import GGUFInfo

ERR_MAX_QUEUE = "server busy, please try again.  maximum pending requests exceeded"
INCOMPATIBLE = (
    "this model may be incompatible with your version of Ollama. If you previously pulled this "
    "model, try updating it by running `ollama pull {name}`"
)


class SchedulerError(Exception):
    """A request the scheduler cannot serve."""


class ServerBusy(SchedulerError):
    """OLLAMA_MAX_QUEUE requests already wait: try again later."""

    def __init__(self) -> None:
        super().__init__(ERR_MAX_QUEUE)


class LoadFailed(SchedulerError):
    pass


class SchedulerClosed(SchedulerError):
    """The scheduler is shutting down."""


@attrs.frozen(kw_only=True)
class ModelSpec:
    """A model as the scheduler sees it: what to load and what it will cost."""

    name: str  # the short display name, for /api/ps and logs
    model_path: str
    info: GGUFInfo
    digest: str = ""
    adapters: tuple[str, ...] = ()
    projectors: tuple[str, ...] = ()
    # The projectors' headers, for the memory estimate.
    projector_info: tuple[GGUFInfo, ...] = attrs.field(default=(), eq=False, hash=False)
    embedding_only: bool = False
    # The `details` object /api/ps shows (format, family, parameter size, quantization).
    details: dict[str, Any] = attrs.field(factory=dict, eq=False, hash=False)
    # Extra facts, such as a fake engine's configuration.
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """One loaded runner per key. Adapters and projectors are compared by needs_reload."""
        if self.model_path:
            return self.model_path
        return f"digest:{self.digest}" if self.digest else f"name:{self.name}"


# Why a runner was unloaded, as metrics and logs name it.
UnloadReason = Literal[
    "keep_alive", "evicted_memory", "evicted_max_models", "reload", "crashed", "requested",
    "shutdown",
]  # fmt: skip
# Why a request got no runner.
RejectReason = Literal["queue_full", "load_failed"]


class SchedulerEvents(Protocol):
    """What the scheduler tells an observer (metrics) as it happens; calls must not block."""

    def waited(self, model: str, seconds: float) -> None:
        """A request got its runner slot after `seconds` in `acquire` (queue and load)."""

    def loaded(self, model: str, seconds: float, ok: bool) -> None: ...

    def unloaded(self, model: str, reason: UnloadReason) -> None: ...

    def rejected(self, reason: RejectReason) -> None: ...


class NoEvents:
    """The observer when nobody observes."""

    def waited(self, model: str, seconds: float) -> None:
        pass

    def loaded(self, model: str, seconds: float, ok: bool) -> None:
        pass

    def unloaded(self, model: str, reason: UnloadReason) -> None:
        pass

    def rejected(self, reason: RejectReason) -> None:
        pass
