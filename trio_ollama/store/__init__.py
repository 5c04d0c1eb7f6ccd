"""The model store in Ollama's on-disk layout."""

from trio_ollama.store.errors import (
    BlobNotFoundError,
    CorruptModelError,
    CreateError,
    DigestMismatchError,
    ModelNotFoundError,
    StoreError,
)
from trio_ollama.store.modelfile import CreateRequest, Message
from trio_ollama.store.store import ModelDetails, ModelEntry, Store

__all__ = [
    "BlobNotFoundError",
    "CorruptModelError",
    "CreateError",
    "CreateRequest",
    "DigestMismatchError",
    "Message",
    "ModelDetails",
    "ModelEntry",
    "ModelNotFoundError",
    "Store",
    "StoreError",
]
