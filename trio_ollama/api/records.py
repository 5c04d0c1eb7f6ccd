"""What one HTTP request did, filled in as it goes (by the route, the service, the stream), for
its log line and its metrics when it ends (`responses.request_scoped`)."""

from __future__ import annotations

from contextvars import ContextVar

import attrs


@attrs.define
class RequestRecord:
    method: str
    path: str
    started: float
    endpoint: str = ""  # the route template ("/api/generate"), "" when no route matched
    status: int = 0
    model: str = ""
    queue_wait: float | None = None  # seconds in the scheduler's `acquire`, load included
    prompt_tokens: int | None = None
    generated_tokens: int | None = None

    def log_fields(self, duration: float) -> dict[str, object]:
        fields: dict[str, object] = {
            "method": self.method, "route": self.endpoint or self.path, "status": self.status,
            "duration": round(duration, 6),
        }  # fmt: skip
        if self.model:
            fields["model"] = self.model
        if self.queue_wait is not None:
            fields["queue_wait"] = round(self.queue_wait, 6)
        if self.prompt_tokens is not None:
            fields["prompt_tokens"] = self.prompt_tokens
        if self.generated_tokens is not None:
            fields["generated_tokens"] = self.generated_tokens
        return fields


_RECORD: ContextVar[RequestRecord | None] = ContextVar("trio_ollama_request_record", default=None)


def current() -> RequestRecord | None:
    """This request's record; None outside a request (the service used as a library)."""
    return _RECORD.get()


def begin(record: RequestRecord) -> object:
    return _RECORD.set(record)


def end(token: object) -> None:
    _RECORD.reset(token)  # type: ignore[arg-type]
