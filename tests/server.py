"""A real `trio-ollama serve` in a subprocess, on a free loopback port, with its own store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.procs import alive, children, poll_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE = ("-m", "trio_ollama", "serve")


class ServerProcess:
    """`trio-ollama serve` as a subprocess; `stop()` sends SIGTERM and checks the runners died.
    `command` (Python's arguments) may start another program that serves the same way;
    `stderr=subprocess.PIPE` keeps its log for the test (as text)."""

    def __init__(
        self,
        models: Path,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = SERVE,
        stderr: int | None = None,
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        full_env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_MODELS": str(models),
            "OLLAMA_NOPRUNE": "1",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            env=full_env, stdin=subprocess.DEVNULL, stderr=stderr, text=True,
        )  # fmt: skip
        try:
            poll_until(self.answers, 30, "the server did not answer within 30 s")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def answers(self) -> bool:
        """Whether the server answers `GET /` (it is up); fails at once if it exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"server did not start (exit status {self.proc.returncode})")
        try:
            return httpx.get(self.url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def runners(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self, timeout: float = 30) -> int:
        runners = self.runners()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        poll_until(lambda: not any(alive(p) for p in runners), 5, "a runner outlived the server")
        return code


@contextmanager
def running_server(models: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start the server, wait until it answers, yield its URL; stop it and check it cleaned up."""
    server = ServerProcess(models, env)
    try:
        yield server.url
    finally:
        server.stop()
