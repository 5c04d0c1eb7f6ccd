"""`trio-ollama fleet` as a user runs it: a head and a worker node as processes of their own on
127.0.0.1, a replica serving the default model through the ingress, and nothing of it left
once the command is stopped with SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.fleet import fleet_servers, store_with_models
from tests.procs import command_lines, poll_until
from tests.server import free_port

pytestmark = pytest.mark.slow


def _ray_processes(session: str) -> list[int]:
    """Processes whose command line names this cluster's session directory."""
    named = session.encode()
    return [pid for pid, command in command_lines().items() if any(named in a for a in command)]


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Where Ray keeps this cluster's session files (RAY_TMPDIR): a folder of this test's, so
    that what is left of the cluster can be told from any other; short, as Ray's socket paths
    must be."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_fleet_command_serves_and_leaves_nothing_behind(
    tmp_path: Path, default_gguf: Path, ray_tmp: Path, all_cores: None
) -> None:
    store, names = store_with_models(tmp_path, 1)
    root = store.layout.root
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OLLAMA_MODELS": str(root), "RAY_TMPDIR": str(ray_tmp),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    argv = [sys.executable, "-m", "trio_ollama", "fleet", "--replicas", "1", "--workers", "1",
            "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.decode(errors="replace"))
            if f"fleet of 1 at {url}" in lines[-1]:
                ready.set()
        ready.set()  # ended: the assertion below says so

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The command says it is ready once the whole fleet is deployed (the ingress may answer
        # a moment before).
        assert ready.wait(180) and proc.poll() is None, "".join(lines)[-2000:]
        assert httpx.get(url + "/api/tags", timeout=30).status_code == 200
        answer = ollama.Client(host=url, timeout=120).generate(
            model=names[0], prompt="1, 2, 3,", raw=True,
            options={"num_predict": 4, "temperature": 0},
        )  # fmt: skip
        assert answer.done and answer.eval_count == 4
        assert len(fleet_servers(root)) == 1
        assert _ray_processes(str(ray_tmp)), "no process of the cluster was found"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        reader.join(timeout=30)
    assert proc.returncode == 0, "".join(lines)[-2000:]
    poll_until(lambda: not fleet_servers(root), 20, "a fleet server outlived the command")
    poll_until(lambda: not _ray_processes(str(ray_tmp)), 30, "a Ray process outlived the command")
