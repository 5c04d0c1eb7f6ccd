"""The one error type of the HTTP layer: a status and a message for `{"error": message}`."""

from __future__ import annotations


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
