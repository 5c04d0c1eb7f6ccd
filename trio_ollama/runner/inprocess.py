"""A runner served inside this process over an in-memory stream: the fake engine's home.

Same protocol, same `serve_runner` and `RunnerClient` as a subprocess, but time passes through
Trio, so tests and the simulation run it under `MockClock`.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from trio_ollama.concurrency import unwrap_single
from trio_ollama.runner.client import RunnerClient
from trio_ollama.runner.interface import Engine
from trio_ollama.runner.protocol import Load
from trio_ollama.runner.server import serve_runner


class InProcessRunner:
    """Has `RunnerProcess`'s interface: `run` is for `nursery.start` and returns once loaded."""

    def __init__(self, load: Load, engine: Engine | Callable[[], Engine]) -> None:
        self.load = load
        self.engine = engine if not callable(engine) else engine()
        self.pid: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[RunnerClient]) -> None:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        client = RunnerClient(client_stream)

        async def serve() -> None:
            try:
                await serve_runner(server_stream, self.engine)
            finally:
                await server_stream.aclose()  # what a dying process does to its socket

        with unwrap_single():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                try:
                    await client.handshake(self.load)
                    nursery.start_soon(client.read_loop)
                    task_status.started(client)
                    await client.closed.wait()
                finally:
                    nursery.cancel_scope.cancel()
