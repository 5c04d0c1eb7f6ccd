"""A stored model as the scheduler sees it: where the store meets the scheduler, above both."""

from __future__ import annotations

from trio_ollama.gguf_info import GGUFInfo, gguf_info_cached
from trio_ollama.scheduler import ModelSpec
from trio_ollama.store import ModelDetails


class NoWeightsError(ValueError):
    """A stored model without a GGUF model layer: there is nothing to load."""


def embedding_only(info: GGUFInfo) -> bool:
    """Ollama: a model with a pooling type is an embedding model, and only that."""
    return info.pooling_type is not None


def model_spec(details: ModelDetails) -> ModelSpec:
    """The `ModelSpec` of a model from `Store.show`.

    The first call reads the GGUF header (tens of milliseconds): from async code, run it in a
    thread (`trio.to_thread.run_sync(model_spec, details)`).
    """
    info = details.gguf
    if info is None or details.model_path is None:
        raise NoWeightsError(f"{details.name.display_shortest} has no model weights")
    return ModelSpec(
        name=details.name.display_shortest,
        model_path=str(details.model_path),
        info=info,
        digest=details.digest,
        adapters=tuple(str(p) for p in details.adapters),
        projectors=tuple(str(p) for p in details.projectors),
        projector_info=tuple(gguf_info_cached(p) for p in details.projectors),
        embedding_only=embedding_only(info),
        details=details.config.details(),
    )
