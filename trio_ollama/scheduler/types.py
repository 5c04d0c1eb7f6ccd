"""Values the scheduler is asked about, and the errors it answers with."""

from __future__ import annotations

from typing import Any

import attrs

from trio_ollama.gguf_info import GGUFInfo
from trio_ollama.options import OPTIONS

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


@attrs.frozen(kw_only=True)
class RunnerOptions:
    """The options fixed at load time (the "load" options of `trio_ollama.options`); a change
    means a reload (reference §4.3)."""

    num_ctx: int = OPTIONS["num_ctx"].default
    num_batch: int = OPTIONS["num_batch"].default
    num_gpu: int = OPTIONS["num_gpu"].default
    main_gpu: int = OPTIONS["main_gpu"].default
    use_mmap: bool | None = OPTIONS["use_mmap"].default
    num_thread: int = OPTIONS["num_thread"].default

    def normalized(self, n_ctx_train: int) -> RunnerOptions:
        """Ollama's adjustments: num_ctx at least 4 and at most the training context."""
        num_ctx = max(4, self.num_ctx)
        if n_ctx_train > 0:
            num_ctx = min(num_ctx, n_ctx_train)
        return attrs.evolve(self, num_ctx=num_ctx, num_batch=max(1, min(self.num_batch, num_ctx)))
