"""Store errors. Each carries Ollama's message and the HTTP status the API gives it."""

from __future__ import annotations


class StoreError(Exception):
    status = 500


class ModelNotFoundError(StoreError):
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")
        self.name = name


class BlobNotFoundError(StoreError):
    status = 404

    def __init__(self, digest: str) -> None:
        super().__init__(f'blob "{digest}" not found')
        self.digest = digest


class DigestMismatchError(StoreError):
    status = 400

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f'digest mismatch, expected "{expected}", got "{actual}"')


class CreateError(StoreError):
    """A create request that cannot be carried out as given (a client error)."""

    status = 400


class CorruptModelError(StoreError):
    """A manifest or config blob on disk that cannot be read."""
