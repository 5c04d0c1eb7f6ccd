"""A real `trio-ollama serve` in a subprocess, on a free loopback port, with its own store; and
`RealServers`, the ones test modules share (the `real_servers` fixture of `tests/conftest.py`)."""

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
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model


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
        self.models = models
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


def unload_all(server: ServerProcess) -> None:
    """Unload every model the server has loaded (as `trio-ollama stop` does each), and wait
    until its runner processes are gone."""
    for model in httpx.get(server.url + "/api/ps", timeout=30).json()["models"]:
        body = {"model": model["name"], "keep_alive": 0}
        r = httpx.post(server.url + "/api/generate", json=body, timeout=60)
        assert r.status_code == 200, r.text

    def loaded() -> list[str]:
        return [m["name"] for m in httpx.get(server.url + "/api/ps", timeout=30).json()["models"]]

    # The runner's process may end a moment before the scheduler forgets the model.
    poll_until(lambda: not server.runners() and not loaded(), 30, "a model did not unload")


class RealServers:
    """Real servers that test modules share, one for each set of settings (`OLLAMA_*`
    variables), each on a store of its own that holds the default model. A module adds the
    models it needs to `server.models`; a test that changes a server's settings, kills it or
    needs counts from zero starts its own `ServerProcess` instead.

    `get` starts the server for `env` at its first use and hands it over as a server just
    started would be: no model loaded (what earlier modules loaded, on any of them, is
    unloaded). One that died (a module's tests failed for that) is replaced, store and all, so
    that the next module does not fail for it too. `test_cli` lists every model of the default
    server's store: each is the default model's weights (98 MB) under another name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[tuple[tuple[str, str], ...], ServerProcess] = {}
        self.started = 0

    def get(self, env: Mapping[str, str] | None = None) -> ServerProcess:
        key = tuple(sorted((env or {}).items()))
        for known, server in list(self.servers.items()):
            if server.proc.poll() is not None:
                del self.servers[known]
            else:
                unload_all(server)
        if key not in self.servers:
            self.started += 1
            models = self.root / f"server-{self.started}" / "models"
            ensure_default_model(Store(models))
            self.servers[key] = ServerProcess(models, env)
        return self.servers[key]

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
