"""trio-ollama: an Ollama-compatible model server on Trio, usable as a library."""

from trio_ollama.config import Settings
from trio_ollama.scheduler import ModelSpec, RunnerOptions, Scheduler, open_scheduler
from trio_ollama.specs import model_spec
from trio_ollama.store import Store
from trio_ollama.version import __version__


def __getattr__(name: str) -> object:
    # The HTTP stack (quart, anycorn) is imported only by those who serve.
    if name == "serve":
        from trio_ollama.api.server import serve

        return serve
    raise AttributeError(f"module 'trio_ollama' has no attribute {name!r}")


__all__ = [
    "ModelSpec",
    "RunnerOptions",
    "Scheduler",
    "Settings",
    "Store",
    "__version__",
    "model_spec",
    "open_scheduler",
    "serve",
]
