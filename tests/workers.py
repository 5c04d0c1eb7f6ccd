"""How `./dev test` shares the machine among its xdist workers (`tests/conftest.py` hooks these
in): with more workers than cores, the last one is a *waiting* worker, on every core, that takes
only the modules that spend their time waiting on other processes (Ray's start-up and its
health checks, connections left to time out); the others each keep an equal share of the cores
and take every other module, a module at a time (`--dist loadfile`).

Why shares: a runner decodes on as many threads as it sees cores (`trio_ollama.cpus`). Two
workers' runners each on every core would be four busy threads on two cores, each waiting on
the others (three timing tests failed so), and every timing a test measures would depend on what
the other worker happens to run. Each on its own share, a test's runner sees the same machine
from its first measure to its last. Why a waiting worker: a module that waits would leave its
worker's core idle meanwhile; beside the others it costs them little."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import pytest

# The cores this run was given, before an xdist worker keeps only its share of them.
MACHINE_CORES = frozenset(os.sched_getaffinity(0))

# Modules that mostly wait on other processes (measured on 2 cores, a worker each: 45 s of
# test_fleet's 15 s of CPU, 16 s of test_http_front's 3 s, 8 s of test_bench's 2.4 s).
WAITING_MODULES = frozenset(
    {
        "tests/test_fleet.py",
        "tests/test_fleet_command.py",
        "tests/test_http_front.py",
        "tests/test_bench.py",
    }
)


def has_waiting_worker(count: int, cores: Collection[int] = MACHINE_CORES) -> bool:
    return count > len(cores) >= 1 and count >= 2


def cores_of_worker(index: int, count: int, cores: Collection[int] = MACHINE_CORES) -> list[int]:
    """The cores xdist worker `index` of `count` keeps: every core for the waiting worker, an
    equal share for the others (all of them where there are fewer cores than workers)."""
    ordered = sorted(cores)
    if has_waiting_worker(count, cores) and index == count - 1:
        return ordered
    sharing = count - 1 if has_waiting_worker(count, cores) else count
    share = len(ordered) // sharing
    if share < 1:
        return ordered
    return ordered[index * share : (index + 1) * share]


def pin_this_worker() -> None:
    """In an xdist worker: keep its cores; the servers and runners it starts inherit them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.sched_setaffinity(0, cores_of_worker(int(worker.removeprefix("gw")), count))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` that sends the waiting modules to the waiting worker and every other
    module to the others; xdist's own where there is no waiting worker."""
    from xdist.scheduler import LoadFileScheduling

    count = int(config.getoption("numprocesses") or 0)

    class WaitingApart(LoadFileScheduling):  # type: ignore[misc]
        def _waits(self, node: Any) -> bool:
            return bool(node.gateway.id == f"gw{count - 1}")

        def _fits(self, node: Any, scope: str) -> bool:
            """Whether `node` may take `scope`: one of its own kind, or any if no live worker
            of the other kind is left to take it (one crashed, or xdist let it go)."""
            waiting = scope in WAITING_MODULES
            if waiting == self._waits(node):
                return True
            return not any(
                self._waits(other) == waiting and not other.shutting_down
                for other in self.assigned_work
                if other is not node
            )

        def _assign_work_unit(self, node: Any) -> None:
            for scope in self.workqueue:
                if self._fits(node, scope):
                    break
            else:
                return
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some(
                [collection.index(nodeid) for nodeid, done in work_unit.items() if not done]
            )

        def _reschedule(self, node: Any) -> None:
            if node.shutting_down:
                return
            if not any(self._fits(node, scope) for scope in self.workqueue):
                node.shutdown()  # it ends once it has run what it was sent
                return
            if self._pending_of(self.assigned_work[node]) > 2:
                return
            self._assign_work_unit(node)

    if config.getoption("dist") != "loadfile" or not has_waiting_worker(count):
        return None
    return WaitingApart(config, log)
