"""A Ray cluster on this machine, for trying the fleet (`trio-ollama fleet`) and for its tests:
a head node and N worker nodes, each its own set of processes (Ray's `Cluster`), on 127.0.0.1
only, with no dashboard and small object stores. Serve's HTTP proxy runs on the head node only
(one machine has one port 11434) and listens on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import ray
from ray import serve
from ray.cluster_utils import Cluster

from trio_ollama.fleet.app import FleetOptions, fleet_app
from trio_ollama.fleet.loopback import LOOPBACK, loopback_only

OBJECT_STORE_BYTES = 100 * 1024 * 1024


@attrs.frozen
class LocalFleet:
    cluster: Cluster
    url: str  # the ingress, through Serve's HTTP proxy


def _node(num_cpus: float) -> dict[str, Any]:
    return {
        "num_cpus": num_cpus,
        "node_ip_address": LOOPBACK,
        "object_store_memory": OBJECT_STORE_BYTES,
        "include_dashboard": False,
    }


@contextmanager
def local_cluster(workers: int, cpus_per_worker: float = 1.0) -> Iterator[Cluster]:
    """A head (no CPUs for replicas: Serve's controller and proxy take none) and `workers`
    worker nodes of `cpus_per_worker` logical CPUs, this process connected as the driver."""
    loopback_only()
    cluster = Cluster(initialize_head=True, head_node_args=_node(0))
    try:
        for _ in range(workers):
            cluster.add_node(**_node(cpus_per_worker))
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, logging_level=logging.WARNING)
        try:
            yield cluster
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()  # type: ignore[no-untyped-call]


def start_serve(port: int) -> None:
    """Serve on the connected cluster: its HTTP proxy on the head only, on 127.0.0.1:`port`."""
    serve.start(proxy_location="HeadOnly", http_options={"host": LOOPBACK, "port": port})


def deploy(options: FleetOptions, port: int, name: str = "fleet") -> str:
    """Deploy the fleet on the connected cluster; the ingress's URL once every replica's
    server answers."""
    start_serve(port)
    serve.run(fleet_app(options), name=name, route_prefix="/")
    return f"http://{LOOPBACK}:{port}"


@contextmanager
def local_fleet(
    options: FleetOptions, port: int, workers: int | None = None, cpus_per_worker: float = 1.0
) -> Iterator[LocalFleet]:
    """A local cluster with the fleet deployed on it; Serve shut down and the cluster's
    processes stopped on the way out (the replicas stop their servers)."""
    with local_cluster(workers or options.replicas, cpus_per_worker) as cluster:
        try:
            yield LocalFleet(cluster, deploy(options, port))
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
