"""`trio-ollama fleet`: a local Ray cluster (a head and N worker nodes, each its own
processes) with the fleet deployed on it, on 127.0.0.1, until Ctrl-C. Its arguments are read
without Ray; Ray is imported only when the command runs (the `ray` extra)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

ROUTINGS = ("affinity", "random")


def add_parser(verbs: Any) -> None:
    fleet = verbs.add_parser(
        "fleet", help="start a local Ray cluster serving a fleet of servers (docs/scale-out.md)"
    )
    fleet.add_argument("--replicas", type=int, default=2, help="servers in the fleet (2)")
    fleet.add_argument(
        "--workers", type=int, help="worker nodes, each its own processes (one a replica)"
    )
    fleet.add_argument("--cpus-per-worker", type=float, default=1.0, help="Ray CPUs a node")
    fleet.add_argument("--routing", choices=ROUTINGS, default="affinity")
    fleet.add_argument(
        "--cores-per-replica", type=int,
        help="CPUs of this machine each replica's server runs on, its own (default: the CPUs "
        "shared out between the replicas, at least 1; 0: every server on every CPU)",
    )  # fmt: skip
    fleet.add_argument("--port", type=int, default=11434, help="the ingress, on 127.0.0.1")
    fleet.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for every replica's server (OLLAMA_MAX_LOADED_MODELS=2...)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    env: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"Error: --env {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    if "OLLAMA_MODELS" in os.environ:  # one store for every replica (docs/scale-out.md)
        env.setdefault("OLLAMA_MODELS", os.environ["OLLAMA_MODELS"])
    try:
        from trio_ollama.fleet.app import FleetOptions
        from trio_ollama.fleet.cluster import local_fleet
    except ImportError as exc:
        print(f"Error: {exc}: install the ray extra (pip install 'trio-ollama[ray]')",
              file=sys.stderr)  # fmt: skip
        return 1
    cores = args.cores_per_replica
    if cores is None:
        cores = max(1, len(os.sched_getaffinity(0)) // max(1, args.replicas))
    options = FleetOptions(
        replicas=args.replicas, routing=args.routing, env=env, cores_per_replica=cores
    )
    stop = threading.Event()
    with local_fleet(options, args.port, args.workers, args.cpus_per_worker) as fleet:
        # After Ray has started: its driver installs a handler of its own that aborts the
        # process on SIGTERM (exit 134, the cluster torn down by the head's death, not by us).
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"fleet of {args.replicas} at {fleet.url} ({args.routing} routing); Ctrl-C stops it")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0
