"""The fleet's front door: a Ray Serve ingress that speaks every API the server speaks.

Every request but the fleet views goes to one replica, chosen by the router
(`fleet/router.py`) from the model its JSON body names (native, `/v1`, `/v1/messages`,
`/v1/responses`: each has "model"), passed as the multiplexed model id. The replica's status,
headers and body come back as it sends them, chunk by chunk; a body with no model (or no JSON)
goes to any replica, which answers it as one server would (a 400 and its error text). When the
client hangs up, Ray cancels this request and with it the call to the replica, which closes its
connection to the server; the server frees the slot.

The views (`GET /api/ps`, `/api/tags`, `/v1/models`, `/metrics`) ask every replica and merge
their answers (`fleet/views.py`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response, StreamingResponse

from trio_ollama.config import MAX_JSON_BODY
from trio_ollama.fleet import views
from trio_ollama.fleet.loopback import replicas_on_loopback
from trio_ollama.fleet.wire import (
    ROUTERS,
    TO_REPLICA,
    Head,
    Request,
    model_in,
    model_key,
    read_body,
)

replicas_on_loopback()

VIEWS = ("/api/ps", "/api/tags", "/v1/models", "/metrics")


class Ingress:
    def __init__(self, replicas: DeploymentHandle[Any]) -> None:
        self.replicas = replicas

    async def __call__(self, http: HTTPRequest) -> Response:
        length = http.headers.get("content-length", "")
        # Twenty digits say enough (past the bound), and int() refuses a 5,000-digit string.
        declared = int(length[:20]) if length.isascii() and length.isdigit() else None
        body = await read_body(http.stream(), declared, MAX_JSON_BODY)
        if body is None:
            return _json({"error": f"request body exceeds {MAX_JSON_BODY} bytes"}, 413)
        request = Request(
            http.method, http.url.path, http.url.query, tuple(http.headers.items()), body
        )
        if request.method == "GET" and request.path in VIEWS:
            return await self._view(request)
        model = model_in(request.body)
        stream = self._send(request, model_key(model) if model else "")
        try:
            head = await stream.__anext__()
        except BaseException:
            stream.cancel()  # type: ignore[no-untyped-call]
            raise
        assert isinstance(head, Head)
        headers = dict(head.headers)
        return StreamingResponse(_rest(stream), status_code=head.status, headers=headers)

    def _send(self, request: Request, routing_id: str) -> DeploymentResponseGenerator[Any]:
        handle = self.replicas.options(stream=True, multiplexed_model_id=routing_id)
        response = handle.handle.remote(request)
        assert isinstance(response, DeploymentResponseGenerator)
        return response

    async def _whole(self, request: Request, replica: str) -> tuple[Head, bytes]:
        """One named replica's whole answer to `request`."""
        stream = self._send(request, TO_REPLICA + replica)
        head = await stream.__anext__()
        body = b"".join([chunk async for chunk in stream])
        return head, body

    async def _view(self, request: Request) -> Response:
        router = ROUTERS.get(self.replicas.deployment_name)
        if router is None or not router.replicas():
            # This handle's router starts with its first request.
            await self.replicas.options(stream=False).identity.remote()
            router = ROUTERS[self.replicas.deployment_name]
        names = router.replicas()
        # One after another: Ray's router knows the calls one request makes by that request's
        # id, and two at once under one id are one too many (the second is never routed).
        answers = [await self._whole(request, name) for name in names]
        for head, body in answers:
            if head.status != 200:
                return Response(body, status_code=head.status, headers=dict(head.headers))
        texts = [(head.replica, body.decode()) for head, body in answers]
        if request.path == "/metrics":
            merged = views.merge_metrics(texts)
            return Response(merged, media_type="text/plain; version=0.0.4; charset=utf-8")
        parsed: list[tuple[str, Any]] = [(name, json.loads(text)) for name, text in texts]
        if request.path == "/api/ps":
            return _json(views.merge_ps(parsed))
        if request.path == "/api/tags":
            return _json(views.merge_listing([a for _, a in parsed], "models", "name"))
        return _json(views.merge_listing([a for _, a in parsed], "data", "id"))


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data), status_code=status, media_type="application/json; charset=utf-8"
    )


async def _rest(stream: DeploymentResponseGenerator[Any]) -> AsyncIterator[bytes]:
    """The body after the head; cancelling the replica's call if the client hangs up."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        stream.cancel()  # type: ignore[no-untyped-call]
