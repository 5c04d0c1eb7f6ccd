"""Values the scheduler is asked about, and the errors it answers with."""

from __future__ import annotations

from typing import Any

import attrs

from trio_ollama.gguf_info import GGUFInfo
from trio_ollama.store import ModelDetails

ERR_MAX_QUEUE = "server busy, please try again.  maximum pending requests exceeded"
INCOMPATIBLE = (
    "this model may be incompatible with your version of Ollama. If you previously pulled this "
    "model, try updating it by running `ollama pull {name}`"
)


class SchedulerError(Exception):
    """A request the scheduler cannot serve; `status` is the HTTP status it maps to."""

    status = 500


class ServerBusy(SchedulerError):
    status = 503

    def __init__(self) -> None:
        super().__init__(ERR_MAX_QUEUE)


class LoadFailed(SchedulerError):
    pass


class SchedulerClosed(SchedulerError):
    status = 503


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

    @classmethod
    def from_details(cls, details: ModelDetails) -> ModelSpec:
        """The spec of a stored model (`Store.show`). Blocks on the GGUF header: use a thread."""
        if details.gguf is None or details.model_path is None:
            raise LoadFailed(f"{details.name.display_shortest} has no model weights")
        return cls(
            name=details.name.display_shortest,
            model_path=str(details.model_path),
            info=details.gguf,
            digest=details.digest,
            adapters=tuple(str(p) for p in details.adapters),
            projectors=tuple(str(p) for p in details.projectors),
            # Ollama: a model with a pooling type is an embedding model, and only that.
            embedding_only=details.gguf.pooling_type is not None,
            details=details.config.details(),
        )

    @property
    def key(self) -> str:
        """One loaded runner per key. Adapters and projectors are compared by needs_reload."""
        if self.model_path:
            return self.model_path
        return f"digest:{self.digest}" if self.digest else f"name:{self.name}"


@attrs.frozen(kw_only=True)
class RunnerOptions:
    """The options fixed at load time; a change means a reload (reference §4.3)."""

    num_ctx: int = 4096
    num_batch: int = 512
    num_gpu: int = -1
    main_gpu: int = 0
    use_mmap: bool | None = None
    num_thread: int = 0

    def normalized(self, n_ctx_train: int) -> RunnerOptions:
        """Ollama's adjustments: num_ctx at least 4 and at most the training context."""
        num_ctx = max(4, self.num_ctx)
        if n_ctx_train > 0:
            num_ctx = min(num_ctx, n_ctx_train)
        return attrs.evolve(self, num_ctx=num_ctx, num_batch=max(1, min(self.num_batch, num_ctx)))

    @classmethod
    def from_options(cls, options: dict[str, Any], default_ctx: int) -> RunnerOptions:
        fields = attrs.fields_dict(cls)
        values = {k: v for k, v in options.items() if k in fields}
        values.setdefault("num_ctx", default_ctx)
        return cls(**values)
