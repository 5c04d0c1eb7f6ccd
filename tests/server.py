"""A real `trio-ollama serve` in a subprocess, on a free loopback port, with its own store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.procs import alive, children


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(models: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start the server, wait until it answers, yield its URL; stop it and check it cleaned up."""
    port = free_port()
    full_env = {
        **os.environ,
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(models),
        "OLLAMA_NOPRUNE": "1",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "trio_ollama", "serve"],
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit status {proc.poll()})")
            time.sleep(0.1)
        yield url
    finally:
        runners = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        deadline = time.monotonic() + 5
        while any(alive(p) for p in runners) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in runners), "a runner outlived the server"
