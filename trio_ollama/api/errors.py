"""The one error type of the HTTP layer: a status and a message for `{"error": message}`."""

from __future__ import annotations

from trio_ollama.runner.client import RunnerError
from trio_ollama.scheduler import SchedulerClosed, SchedulerError, ServerBusy
from trio_ollama.store.errors import (
    BlobNotFoundError,
    CorruptModelError,
    CreateError,
    DigestMismatchError,
    ModelNotFoundError,
    StoreError,
)


class APIError(Exception):
    """An answer to give the client instead of a result.

    `status` is the HTTP status; `message` goes out as `{"error": message}` on the native API
    and as `{"error": {"message": ..., "type": ...}}` on the OpenAI layer, where `openai_type`
    (when set) overrides the type derived from the status.
    """

    def __init__(self, status: int, message: str, *, openai_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.openai_type = openai_type

    def __repr__(self) -> str:
        return f"APIError({self.status}, {self.message!r})"


def scheduler_error(exc: SchedulerError) -> APIError:
    """The HTTP answer to a scheduler's refusal: busy or closing is 503, a failed load 500."""
    status = 503 if isinstance(exc, ServerBusy | SchedulerClosed) else 500
    return APIError(status, str(exc))


def runner_error(exc: RunnerError) -> APIError:
    """The HTTP answer to a runner's refusal: the request's fault is 400, the runner's 500."""
    return APIError(400 if exc.invalid else 500, str(exc))


def store_error(exc: StoreError) -> APIError:
    """The HTTP answer to a store failure: unknown names and blobs 404, bad input 400."""
    if isinstance(exc, ModelNotFoundError | BlobNotFoundError):
        return APIError(404, str(exc))
    if isinstance(exc, DigestMismatchError | CreateError):
        return APIError(400, str(exc))
    if isinstance(exc, CorruptModelError):
        return APIError(400, f"model is corrupt: {exc}; remove it with `trio-ollama rm`")
    return APIError(500, str(exc))
