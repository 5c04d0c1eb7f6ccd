"""The fleet as a Ray Serve application: the ingress in front of N replicas, routed by model
affinity or at random. `build` is the builder a Serve config file names
(`import_path: trio_ollama.fleet.app:build`, docs/scale-out.md); `fleet_app` the same in code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from ray import serve
from ray.serve import Application

from trio_ollama.fleet.ingress import Ingress
from trio_ollama.fleet.replica import Replica
from trio_ollama.fleet.router import ROUTINGS, FleetRouter


@attrs.frozen
class FleetOptions:
    """How the fleet is deployed. `env` is every replica's server settings (OLLAMA_MODELS,
    OLLAMA_NUM_PARALLEL, OLLAMA_MAX_LOADED_MODELS...)."""

    replicas: int = 2
    routing: str = attrs.field(default="affinity", validator=attrs.validators.in_(ROUTINGS))
    env: Mapping[str, str] = attrs.field(factory=dict)
    replica_cpus: float = 1.0  # Ray's logical CPUs a replica takes: 1 spreads them over nodes
    # Replicas sharing one machine: each server on this many CPUs of its own (0: every CPU).
    cores_per_replica: int = 0
    max_ongoing_requests: int = 256  # per replica: the server queues and refuses by itself
    stats_period_s: float = 0.5  # how often a replica reports its /api/ps to the router
    health_check_period_s: float = 2.0
    graceful_shutdown_timeout_s: float = 10.0


def fleet_app(options: FleetOptions) -> Application:
    replica = serve.deployment(
        name="Replica",
        num_replicas=options.replicas,
        max_ongoing_requests=options.max_ongoing_requests,
        ray_actor_options={"num_cpus": options.replica_cpus},
        health_check_period_s=options.health_check_period_s,
        graceful_shutdown_timeout_s=options.graceful_shutdown_timeout_s,
        request_router_config={
            "request_router_class": FleetRouter,
            "request_router_kwargs": {"routing": options.routing},
            "request_routing_stats_period_s": options.stats_period_s,
            "request_routing_stats_timeout_s": 5.0,
        },
    )(Replica).bind(dict(options.env), options.cores_per_replica)
    ingress = serve.deployment(
        name="Ingress",
        num_replicas=1,
        max_ongoing_requests=options.replicas * options.max_ongoing_requests,
        ray_actor_options={"num_cpus": 0},
    )(Ingress)
    app: Application = ingress.bind(replica)
    return app


def build(args: Mapping[str, Any]) -> Application:
    """The application from a Serve config file's `args` (FleetOptions' fields)."""
    known = set(attrs.fields_dict(FleetOptions))
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values = dict(args)
    if "env" in values:
        values["env"] = {str(k): str(v) for k, v in values["env"].items()}
    return fleet_app(FleetOptions(**values))
