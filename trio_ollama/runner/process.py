"""A runner subprocess owned by one Trio task: spawned, loaded, served, and always reaped.

`RunnerProcess.run` is made for `nursery.start`: it returns (through `task_status`) only once the
model is loaded, and when its task is cancelled, or the runner dies, it ends the process (SIGTERM,
a grace period, SIGKILL) and waits for it, shielded, so no process outlives its task.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from trio_ollama.concurrency import unwrap_single
from trio_ollama.runner.client import LoadError, RunnerClient
from trio_ollama.runner.protocol import Load

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0


async def terminate(process: trio.Process, grace: float = DEFAULT_GRACE) -> None:
    """SIGTERM, wait up to `grace` seconds, SIGKILL, reap. Call it shielded."""
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(grace):
            await process.wait()
    if process.returncode is None:
        process.kill()
    await process.wait()


class RunnerProcess:
    def __init__(
        self,
        load: Load,
        *,
        engine: str = "llama",
        fake_config: Mapping[str, Any] | None = None,
        load_timeout: float = math.inf,
        grace: float = DEFAULT_GRACE,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.load = load
        self.engine = engine
        self.fake_config = dict(fake_config or {})
        self.load_timeout = load_timeout
        self.grace = grace
        self.env = env
        self.process: trio.Process | None = None

    def command(self, fd: int) -> list[str]:
        cmd = [sys.executable, "-m", "trio_ollama.runner", "--fd", str(fd), "--engine", self.engine]
        if self.fake_config:
            cmd += ["--fake-config", json.dumps(self.fake_config)]
        return cmd

    async def run(self, *, task_status: trio.TaskStatus[RunnerClient]) -> None:
        parent, child = socket.socketpair()
        try:
            process = await trio.lowlevel.open_process(
                self.command(child.fileno()),
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.process = process
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(parent))
        client = RunnerClient(stream, pid=process.pid)
        log.info("runner started", extra={"pid": process.pid, "model": self.load.model_path})
        try:
            try:
                with trio.fail_after(self.load_timeout):
                    await client.handshake(self.load)
            except trio.TooSlowError:
                raise LoadError(
                    f"timed out waiting for the runner to load {self.load.model_path}"
                ) from None
            except LoadError as exc:
                code = process.poll()
                if code and "failed" not in str(exc):
                    raise LoadError(f"{exc} (exit status {code})") from None
                raise
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read_loop)
                task_status.started(client)
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
                await terminate(process, self.grace)
                log.info(
                    "runner stopped", extra={"pid": process.pid, "returncode": process.returncode}
                )


@asynccontextmanager
async def open_runner(load: Load, **kwargs: Any) -> AsyncIterator[RunnerClient]:
    """A loaded runner for the duration of the block; the process is gone when it exits.

    A model that fails to load raises `LoadError` itself, and an exception in the block comes
    out as itself, neither wrapped in a group.
    """
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            client: RunnerClient = await nursery.start(RunnerProcess(load, **kwargs).run)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
