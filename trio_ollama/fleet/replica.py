"""A fleet replica: a Ray Serve deployment that owns one trio-ollama server and passes
requests to it.

The server is the unchanged `trio-ollama serve`, a subprocess on a loopback port
(`fleet/server.py`); Ray sees a replica that is healthy while that process runs. A request
arrives as its method, path, query, headers and body; the answer goes back as a generator: a
head (status and headers), then the body's bytes as the server writes them, so a stream is
never buffered. When the caller is cancelled (its client hung up), Ray cancels this
generator, which closes the connection to the server; the server cancels the request and
frees its slot, as it does for any client that hangs up.

Replicas run on Ray's asyncio loop, so this side uses httpx on asyncio; the server itself is
one `trio.run`, as everywhere else."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import ray
from ray import serve

from trio_ollama.fleet.loopback import replicas_on_loopback
from trio_ollama.fleet.server import ServerProcess, cores_of
from trio_ollama.fleet.wire import Head, Request, model_key

replicas_on_loopback()

log = logging.getLogger(__name__)

# Hop-by-hop headers, and the length, which the ingress's own framing replaces.
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def _kept(headers: Any) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items() if k.lower() not in _DROPPED]


class Replica:
    """One trio-ollama server behind Ray Serve. `env` holds its OLLAMA_* settings
    (OLLAMA_MODELS: the store; OLLAMA_MAX_LOADED_MODELS: its room). `cores_per_replica`, for
    replicas that share one machine: the server of the replica ranked r runs on that many
    CPUs of its own (`cores_of`), so that the replicas' runners do not oversubscribe the
    cores; 0, on a machine of its own, every CPU."""

    # Serve awaits an async __init__ before the replica takes requests: here, until the
    # server answers.
    async def __init__(  # type: ignore[misc]
        self, env: Mapping[str, str], cores_per_replica: int = 0, start_timeout: float = 60.0
    ) -> None:
        context = serve.get_replica_context()
        self.server = ServerProcess.start(env, cores_of(context.rank.rank, cores_per_replica))
        self.client = httpx.AsyncClient(base_url=self.server.url, timeout=None)
        self.name = context.replica_id.unique_id
        self.node = ray.get_runtime_context().get_node_id()
        deadline = time.monotonic() + start_timeout
        while not await self._answers():
            if self.server.exited() is not None:
                raise RuntimeError(f"server exited with status {self.server.exited()}")
            if time.monotonic() > deadline:
                self.server.stop()
                raise RuntimeError(f"server did not answer within {start_timeout:g} s")
            await asyncio.sleep(0.05)
        log.info("replica %s: server pid=%d at %s", self.name, self.server.pid, self.server.url)

    async def _answers(self) -> bool:
        try:
            return (await self.client.get("/", timeout=1)).status_code == 200
        except httpx.TransportError:
            return False

    async def handle(self, request: Request) -> AsyncIterator[Head | bytes]:
        """The server's answer to `request`: its head, then its body chunk by chunk."""
        built = self.client.build_request(
            request.method, request.path, params=request.query,
            headers=list(request.headers), content=request.body,
        )  # fmt: skip
        response = await self.client.send(built, stream=True)
        try:
            yield Head(response.status_code, _kept(response.headers), self.name)
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    async def record_routing_stats(self) -> dict[str, Any]:
        """What the router ranks this replica by: each loaded model with its requests
        running, and the requests waiting, from the server's `/api/ps`."""
        at = time.time()  # before the read: the state is at least this new
        ps = (await self.client.get("/api/ps", timeout=5)).json()
        running: dict[str, int] = {}
        waiting = 0
        for model in ps.get("models", []):
            running[model_key(model["name"])] = int(model.get("requests_running", 0))
            waiting += int(model.get("requests_waiting", 0))
        return {"running": running, "waiting": waiting, "at": at}

    def identity(self) -> dict[str, str]:
        return {"replica": self.name, "node": self.node, "server": self.server.url}

    async def check_health(self) -> None:
        """Unhealthy once the server has exited: Ray then replaces this replica."""
        status = self.server.exited()
        if status is not None:
            raise RuntimeError(f"the trio-ollama server exited (status {status})")

    def __del__(self) -> None:
        # Ray calls this when it stops the replica (scale-down, shutdown, unhealthy). If the
        # replica's process dies without it, the kernel kills the server (PR_SET_PDEATHSIG).
        server = getattr(self, "server", None)
        if server is not None and server.exited() is None:
            server.stop()
