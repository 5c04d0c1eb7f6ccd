"""What pull and push share: a transfer's progress, reported as Ollama's Wait loops report it
(`pulling <12 hex>` / `pushing <12 hex>` with digest, total and completed, every 60 ms)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import attrs
import trio

from trio_ollama.registry.client import RegistryError

log = logging.getLogger(__name__)

# Ollama's Wait ticker.
REPORT_EVERY = 0.06

Send = trio.MemorySendChannel[dict[str, Any]]


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """A failure of the store's disk (full, read-only, a blob gone) as the transfer's error,
    worded as Go words one (`<path>: no space left on device`), not as Python does
    (`[Errno 28] No space left on device: '<path>'`); the log keeps the traceback."""
    try:
        yield
    except OSError as exc:
        log.warning("a pull or push failed on the store", exc_info=True)
        reason = exc.strerror or str(exc) or "input/output error"
        reason = reason[:1].lower() + reason[1:]
        raise RegistryError(f"{exc.filename}: {reason}" if exc.filename else reason) from exc


def layer_status(verb: str, digest: str, total: int, completed: int) -> dict[str, Any]:
    """`ProgressResponse` of one layer; `completed`, as Go's omitempty, only when non-zero."""
    status: dict[str, Any] = {"status": f"{verb} {digest[7:19]}", "digest": digest}
    if total:
        status["total"] = total
    if completed:
        status["completed"] = completed
    return status


@attrs.define(eq=False)
class Transfer:
    """One blob moving; `completed` grows as bytes land, `done` is set however it ends."""

    digest: str
    total: int
    completed: int = 0
    done: trio.Event = attrs.field(factory=trio.Event)
    failure: Exception | None = None

    def status(self, verb: str) -> dict[str, Any]:
        return layer_status(verb, self.digest, self.total, self.completed)


async def report_until_done(transfer: Transfer, verb: str, send: Send) -> None:
    """Send the transfer's progress every tick until it ends (run it in a nursery beside it)."""
    while not transfer.done.is_set():
        await send.send(transfer.status(verb))
        with trio.move_on_after(REPORT_EVERY):
            await transfer.done.wait()
