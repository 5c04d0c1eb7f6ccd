"""The fleet's request router: Ray Serve's pluggable `RequestRouter`, ranking replicas by model
affinity (`trio_ollama.routing.affinity_order`, the simulator's rule) or at random.

The model comes with each request as its multiplexed model id. What a replica has loaded, and
how busy it is, comes from its server's `/api/ps`, which the replica reports as its routing
stats (`Replica.record_routing_stats`, every `request_routing_stats_period_s`). Between two
reports this router adds what it did itself: a model it sent to a replica counts as loaded
there while a request for it is open (loading or answering: `/api/ps` lists a model only once
it has loaded) and until a report begun after its last request finished says otherwise, and
the open requests count as running there, so a burst of requests
for a new model goes to one replica instead of racing the report.

Ray then tries the ranks in order: the first replica that accepts (below its
`max_ongoing_requests`) takes the request."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from typing import Any

import attrs
from ray.serve.request_router import (
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

from trio_ollama.fleet import wire
from trio_ollama.fleet.wire import TO_REPLICA
from trio_ollama.routing import ServerLoad, affinity_order

ROUTINGS = ("affinity", "random")

log = logging.getLogger(__name__)

# A report stamped this close after a request finished may have been read before it: clocks
# of two processes (or two nodes) and the replica's own read of /api/ps.
CLOCK_MARGIN_S = 0.5


@attrs.define
class _Sent:
    """What this router sent a replica: per model, its requests open, and when one was last
    sent or finished."""

    last: dict[str, float] = attrs.field(factory=dict)
    open: Counter[str] = attrs.field(factory=Counter)  # model -> requests not yet finished


class FleetRouter(RequestRouter):
    def initialize_state(self, routing: str = "affinity", **_: Any) -> None:
        if routing not in ROUTINGS:
            raise ValueError(f"routing: {routing!r} is not one of {', '.join(ROUTINGS)}")
        self.routing = routing
        self.sent: dict[ReplicaID, _Sent] = {}
        self.requests: dict[str, tuple[ReplicaID, str]] = {}  # request id -> replica, model
        wire.ROUTERS[self._deployment_id.name] = self

    def replicas(self) -> list[str]:
        """The replicas this router routes to now, by name (`ReplicaID.unique_id`)."""
        return sorted(r.unique_id for r in self.curr_replicas)

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if pending_request is None:
            return [candidate_replicas]
        # Ray retries a choice that found no replica free; with a backoff only if asked.
        pending_request.routing_context.should_backoff = True
        model = pending_request.metadata.multiplexed_model_id
        if model.startswith(TO_REPLICA):
            name = model[len(TO_REPLICA) :]
            chosen = [r for r in candidate_replicas if r.replica_id.unique_id == name]
            if not chosen:
                log.warning("replica %s is not among %s", name, self.replicas())
            return [chosen]
        if self.routing == "random" or not candidate_replicas:
            return [random.sample(candidate_replicas, len(candidate_replicas))]
        loads = [self.load_of(r) for r in candidate_replicas]
        return [[candidate_replicas[i]] for i in affinity_order(loads, model)]

    def load_of(self, replica: RunningReplica) -> ServerLoad:
        """The replica as its last report showed it, with what this router sent it since."""
        stats = replica.routing_stats or {}
        running: dict[str, int] = dict(stats.get("running", {}))
        sent = self.sent.get(replica.replica_id)
        if sent is not None:
            reported_at = float(stats.get("at", 0.0))
            for model, when in list(sent.last.items()):
                if sent.open[model] or when >= reported_at - CLOCK_MARGIN_S:
                    running[model] = max(running.get(model, 0), sent.open[model])
                else:  # a report read after it says what is there: this note is spent
                    del sent.last[model]
        return ServerLoad(running, int(stats.get("waiting", 0)))

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any
    ) -> None:
        model = pending_request.metadata.multiplexed_model_id
        if not model or model.startswith(TO_REPLICA):
            return
        sent = self.sent.setdefault(replica_id, _Sent())
        sent.last[model] = time.time()
        sent.open[model] += 1
        self.requests[pending_request.metadata.internal_request_id] = (replica_id, model)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        found = self.requests.pop(internal_request_id, None)
        if found is None:
            return
        sent = self.sent.get(found[0])
        if sent is not None:
            sent.last[found[1]] = time.time()
            sent.open[found[1]] -= 1
            if sent.open[found[1]] <= 0:
                del sent.open[found[1]]

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self.sent.pop(replica_id, None)
