"""Process checks for leak tests: children of this process, and whether a pid has exited; and
`poll_until`, the one way a test waits for what another process does."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 0.05


def poll_until(
    condition: Callable[[], object], seconds: float, message: str, every: float = POLL_SECONDS
) -> None:
    """Return once `condition()` is true; fail the test with `message` if it is still false
    after `seconds`.

    For what only polling can see: another process's state (its `/proc` entry, its open files,
    what its HTTP routes answer, the files it writes). Nothing in this process is told when
    that changes, so the sleep below is the poll's period, not a guess at how long to wait.
    What happens in this process is waited for with an event instead (`threading.Event`,
    `trio.Event`)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(every)


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces; fields follow the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(parent: int | None = None) -> list[int]:
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == parent and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def command_lines() -> dict[int, list[bytes]]:
    """Every live process's command line, split into its arguments."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if alive(int(entry.name)):
                found[int(entry.name)] = command
    return found
