"""anycorn's connection handler with one change: a connection the client has closed is closed at
once, not when its keep-alive timeout runs out.

anycorn (0.20) runs each connection (`anycorn.tcp_server.TCPServer.run`) as a task group holding
the read loop, the request's task and an idle timer, started each time a response ends on a
kept-alive connection. When the read loop meets the client's EOF it tells the protocol, which has
no request to end on an idle connection, and returns; the socket is closed only when the task
group is done, and the group still holds the idle timer, so the socket sat in CLOSE_WAIT, a
descriptor held, for the rest of the keep-alive timeout (30 s here). 300 connections opened and
closed by a client cost 300 descriptors; a flood of them, the descriptor limit. A request still
running at the EOF did the same: its response's end started the timer again, waiting for a next
request that could never come.

Here, once the read loop has ended (EOF, a reset, a read timeout) nothing more can arrive: the
idle timer is stopped, and never started again, so the connection ends with its last request.
anycorn has no setting for the handler, so `install` puts this one where `anycorn.run` looks it
up (`anycorn.run.tcp_server_handler`), before the server starts; anycorn's files stay as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anycorn.run
import anyio.abc
from anycorn.config import Config
from anycorn.events import Event, Updated
from anycorn.tcp_server import TCPServer
from anycorn.typing import AppWrapper, LifespanState
from anycorn.worker_context import WorkerContext


class ClosingTCPServer(TCPServer):
    """One connection; as anycorn's, except that the client's EOF ends its idle wait."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.client_gone = False

    async def _read_data(self) -> None:
        await super()._read_data()
        self.client_gone = True
        await self.idle_task.stop()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated) and event.idle and self.client_gone:
            return  # a request running at the EOF has ended: no next one can come
        await super().protocol_send(event)


def tcp_server_handler(
    app: AppWrapper, config: Config, context: WorkerContext, state: LifespanState
) -> Callable[[anyio.abc.SocketStream], Awaitable[None]]:
    """`anycorn.tcp_server.tcp_server_handler`, making `ClosingTCPServer`s."""

    async def handler(stream: anyio.abc.SocketStream) -> None:
        await ClosingTCPServer(app, config, context, state, stream).run()

    return handler


def install() -> None:
    """Make `anycorn.serve` handle connections with `ClosingTCPServer` (idempotent)."""
    # `anycorn.run` imports it from `anycorn.tcp_server` (not re-exported, hence the ignore).
    anycorn.run.tcp_server_handler = tcp_server_handler  # type: ignore[attr-defined]
