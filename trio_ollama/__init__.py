"""trio-ollama: an Ollama-compatible model server on Trio, usable as a library."""

from trio_ollama.config import Settings
from trio_ollama.scheduler import ModelSpec, RunnerOptions, Scheduler, open_scheduler
from trio_ollama.store import Store

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "RunnerOptions",
    "Scheduler",
    "Settings",
    "Store",
    "__version__",
    "open_scheduler",
]
