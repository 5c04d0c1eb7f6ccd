"""Which of several servers should take a request for a model: the one rule of model-affinity
routing, shared by the simulator (`sim/run.py`, servers in virtual time) and the fleet
(`fleet/router.py`, replicas on Ray Serve). A pure function of what each server reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs


@attrs.frozen
class ServerLoad:
    """What a router knows of one server: the models it has loaded, each with the requests
    running on it, and the requests waiting in its queue (as `/api/ps` reports them)."""

    running: Mapping[str, int] = attrs.field(factory=dict)  # loaded model -> requests running
    waiting: int = 0


def affinity_order(servers: Sequence[ServerLoad], model: str) -> list[int]:
    """The servers' indices, best first: those that have `model` loaded, the least busy of
    them first (its requests running on the model, plus those waiting); then the others, the
    fewest models loaded first, then the fewest waiting. Ties keep the servers' order."""
    having = [i for i, s in enumerate(servers) if model in s.running]
    others = [i for i, s in enumerate(servers) if model not in s.running]
    having.sort(key=lambda i: servers[i].running[model] + servers[i].waiting)
    others.sort(key=lambda i: (len(servers[i].running), servers[i].waiting))
    return having + others
