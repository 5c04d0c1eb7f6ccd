"""How many CPUs this process may use: the default thread count of a runner and the scheduler's
thread budget, one rule for both."""

from __future__ import annotations

import os


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS has no affinity call
        return max(1, os.cpu_count() or 1)
