"""Ray on one machine, on 127.0.0.1 only (the local cluster of `trio-ollama fleet` and the
tests). Two of Ray's defaults reach past loopback, and both are turned off here:

- Ray replaces a loopback address by the machine's outward one (`resolve_ip_for_localhost`)
  unless its cluster mode is off, as it is on macOS and Windows: `loopback_only` turns it off
  in this process and, through the environment, in every process the nodes start.
- Every Serve replica starts a gRPC server for calls between deployments on `[::]:0`, all
  interfaces, whether gRPC is used or not (it is not, unless RAY_SERVE_USE_GRPC_BY_DEFAULT):
  `replicas_on_loopback`, run where a fleet replica's module is imported, binds it to
  127.0.0.1 in that mode.

A fleet over several machines (docs/scale-out.md) does neither: its nodes must reach each
other."""

from __future__ import annotations

import os
from typing import Any

LOOPBACK = "127.0.0.1"
MODE = "TRIO_OLLAMA_FLEET_LOOPBACK"


def loopback_only() -> None:
    """Loopback mode for this process and every process started after (from its
    environment); before the cluster starts."""
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    os.environ[MODE] = "1"
    ray_constants.ENABLE_RAY_CLUSTER = False


def replicas_on_loopback() -> None:
    """In loopback mode, the replica's gRPC server in this process binds 127.0.0.1."""
    if os.environ.get(MODE) != "1":
        return
    from ray.serve._private import replica

    module: Any = replica  # Ray's private module: its names are not exported to mypy
    bind = module.add_port_to_grpc_server
    if getattr(bind, "on_loopback", False):
        return

    def on_loopback(server: Any, address: str) -> int:
        return int(bind(server, address.replace("[::]", LOOPBACK)))

    on_loopback.on_loopback = True  # type: ignore[attr-defined]
    module.add_port_to_grpc_server = on_loopback
