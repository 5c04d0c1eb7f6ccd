"""Pull and push: models from and to any registry speaking the OCI distribution protocol."""

from trio_ollama.registry.client import RegistryError
from trio_ollama.registry.download import Downloads
from trio_ollama.registry.pull import TransferOptions, pull_model
from trio_ollama.registry.push import push_model

__all__ = ["Downloads", "RegistryError", "TransferOptions", "pull_model", "push_model"]
