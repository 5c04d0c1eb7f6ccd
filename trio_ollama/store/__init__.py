"""The model store in Ollama's on-disk layout."""

from trio_ollama.store.errors import (
    BlobNotFoundError,
    CorruptModelError,
    CreateError,
    DigestMismatchError,
    ModelNotFoundError,
    StoreError,
)
from trio_ollama.store.modelfile import CreateRequest
from trio_ollama.store.store import ModelDetails, ModelEntry, Store

# A model's MESSAGEs are the one message type the API and the templates use too.
from trio_ollama.templates import Message

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
