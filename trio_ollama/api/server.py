"""`serve`: the scheduler and the HTTP server in one nursery, as `trio-ollama serve` runs them.

Usable from any Trio program: `await nursery.start(serve, settings)` returns once listening (with
the addresses bound). Cancelling the nursery stops everything at once. The shutdown trigger stops
accepting and lets in-flight requests finish within the grace period; those still at work then
get an answer (a 503, or a last `{"error"}` line in a stream), and every runner ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anycorn
import anycorn.config
import trio

from trio_ollama.api import http_front
from trio_ollama.api.app import create_app
from trio_ollama.api.metrics import Metrics
from trio_ollama.api.responses import Drain
from trio_ollama.api.service import Service
from trio_ollama.config import Settings
from trio_ollama.scheduler import open_scheduler
from trio_ollama.store import Store
from trio_ollama.version import OLLAMA_API_VERSION, __version__

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
# After the grace period, the answers the drain gives still need to be written; only a client
# that reads none of them is cut, this much later.
LAST_WORD_SECONDS = 5.0


def _bind(settings: Settings) -> str:
    host = settings.host.host or "0.0.0.0"
    return f"[{host}]:{settings.host.port}" if ":" in host else f"{host}:{settings.host.port}"


async def serve(
    settings: Settings | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    grace: float = GRACE_SECONDS,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    **scheduler_kwargs: Any,
) -> None:
    """Serve Ollama's API until cancelled or until `shutdown_trigger` returns."""
    settings = settings or Settings.from_env()
    store = Store(settings.models_dir)
    if not settings.noprune:
        report = await trio.to_thread.run_sync(store.prune)
        if report.removed_blobs or report.removed_temp_files:
            log.info(
                "pruned the store",
                extra={"blobs": report.removed_blobs, "temp_files": report.removed_temp_files},
            )
    # anycorn: hypercorn's AnyIO fork, run here on Trio. Hypercorn 0.18 let a half-closed
    # request's BusyResourceError escape (ending the server) and never closed `Connection: close`
    # or HTTP/1.0 responses; anycorn does neither (DESIGN §2).
    config = anycorn.config.Config()
    config.bind = [_bind(settings)]
    config.accesslog = None
    # The server's messages through our logging, not a second stderr handler of its own.
    config.errorlog = logging.getLogger("anycorn.error")
    config.graceful_timeout = grace + LAST_WORD_SECONDS
    config.keep_alive_timeout = 30
    # A connection its client closed is closed at once, not after the keep-alive timeout.
    http_front.install()
    drain = Drain()
    metrics = Metrics(enabled=settings.metrics)
    scheduler_kwargs.setdefault("events", metrics)
    async with open_scheduler(settings, **scheduler_kwargs) as scheduler:
        metrics.watch(scheduler)
        service = Service(settings, store, scheduler, metrics)
        app = create_app(service, drain)
        async with trio.open_nursery() as nursery:
            for name in settings.policies.preloads:
                nursery.start_soon(service.preload, name)

            async def triggered() -> None:
                await (shutdown_trigger or trio.sleep_forever)()
                log.info("shutting down: requests in flight have %g s to finish", grace)
                nursery.start_soon(_drain_after, drain, grace)

            async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
                # Quart's ASGI types are hypercorn's; anycorn declares the same protocol anew.
                await anycorn.serve(
                    cast(Any, app),
                    config,
                    shutdown_trigger=triggered,
                    task_status=cast(Any, task_status),
                )
                nursery.cancel_scope.cancel()  # the drain timer, if it is still waiting

            binds: list[str] = await nursery.start(http)
            log.info(
                "Listening on %s (version %s, trio-ollama %s)",
                ", ".join(binds),
                OLLAMA_API_VERSION,
                __version__,
            )
            task_status.started(binds)


async def _drain_after(drain: Drain, grace: float) -> None:
    await trio.sleep(grace)
    log.info("grace period over: answering the requests still in flight")
    drain.close()
