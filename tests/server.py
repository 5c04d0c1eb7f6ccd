"""A real `trio-ollama serve` in a subprocess, on a free loopback port, with its own store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.procs import alive, children


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`trio-ollama serve` as a subprocess; `stop()` sends SIGTERM and checks the runners died."""

    def __init__(
        self,
        models: Path,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] = ("-m", "trio_ollama", "serve"),
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
            [sys.executable, *argv], env=full_env, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"server did not start (exit status {self.proc.poll()})")
            time.sleep(0.1)

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
        deadline = time.monotonic() + 5
        while any(alive(p) for p in runners) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in runners), "a runner outlived the server"
        return code


@contextmanager
def running_server(models: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start the server, wait until it answers, yield its URL; stop it and check it cleaned up."""
    server = ServerProcess(models, env)
    try:
        yield server.url
    finally:
        server.stop()
