"""trio-ollama: an Ollama-compatible model server on Trio, usable as a library."""

from trio_ollama.config import Settings
from trio_ollama.store import Store

__version__ = "0.1.0"

__all__ = ["Settings", "Store", "__version__"]
