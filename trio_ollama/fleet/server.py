"""One `trio-ollama serve` as a subprocess a replica owns: on a free loopback port, in a
process group of its own, and bound to its parent's life.

The server runs unchanged: the same command a user starts, with its own `OLLAMA_HOST`. It dies
with the replica three ways: the replica stops it (`stop`: SIGTERM to the group, then SIGKILL);
the kernel kills it when the replica's process dies, even by SIGKILL (`PR_SET_PDEATHSIG`, set
before the server's program starts); and its runners read EOF on their socket when the server
is gone, and exit (docs/design.md, the runner)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

import attrs

# Run by the child before the server's program: ask the kernel for SIGKILL when the parent
# dies (prctl option 1 is PR_SET_PDEATHSIG), give up if the parent is already gone, then
# become the server. The setting survives exec, and so do the CPUs it may run on, which its
# runners inherit (the server sizes its thread budget by them: trio_ollama/cpus.py).
_BOUND_TO_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "if sys.argv[2]: os.sched_setaffinity(0, [int(c) for c in sys.argv[2].split(',')])\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'trio_ollama', 'serve'])\n"
)


def cores_of(rank: int, per_replica: int) -> list[int]:
    """The CPUs replica `rank` runs its server on, when replicas share one machine: `per_replica`
    of this process's, the next ones for each rank (round the list); none (every CPU) for 0."""
    if per_replica <= 0:
        return []
    usable = sorted(os.sched_getaffinity(0))
    return sorted({usable[(rank * per_replica + i) % len(usable)] for i in range(per_replica)})


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class ServerProcess:
    """A started server: its process and URL. `start` returns at once; `answers` says when
    it is up."""

    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, env: Mapping[str, str], cores: Sequence[int] = ()) -> ServerProcess:
        """Start `trio-ollama serve` on 127.0.0.1 with `env` (OLLAMA_* settings) over this
        process's environment, on `cores` only if given; its output goes to this process's
        (Ray's worker log)."""
        port = free_port()
        full_env = {**os.environ, **env, "OLLAMA_HOST": f"127.0.0.1:{port}"}
        process = subprocess.Popen(
            [sys.executable, "-c", _BOUND_TO_PARENT, str(os.getpid()), ",".join(map(str, cores))],
            env=full_env, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        return cls(process, f"http://127.0.0.1:{port}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        """The exit status once it has exited, else None."""
        return self.process.poll()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to its process group (the server and its runners), SIGKILL to what is left
        after `grace` seconds; reaps the server."""
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
