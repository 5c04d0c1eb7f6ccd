"""Store errors, each with Ollama's message (the API maps them to HTTP statuses)."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation that failed; the store is left as it was."""


class ModelNotFoundError(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")
        self.name = name


class BlobNotFoundError(StoreError):
    def __init__(self, digest: str) -> None:
        super().__init__(f'blob "{digest}" not found')
        self.digest = digest


class DigestMismatchError(StoreError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f'digest mismatch, expected "{expected}", got "{actual}"')
        self.expected = expected
        self.actual = actual


class CreateError(StoreError):
    """A create request that cannot be carried out as given (a client error)."""


class CorruptModelError(StoreError):
    """A manifest or config blob on disk that cannot be read."""
