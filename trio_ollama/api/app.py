"""The HTTP surface: a quart-trio app whose routes parse, call the service, and stream (the
streaming rules are in `responses.py`), with Ollama's Host and CORS checks in front."""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import socket
from collections.abc import Iterator

import trio
from quart import Response, request
from quart_trio import QuartTrio

from trio_ollama.api import records, schemas
from trio_ollama.api.anthropic_routes import add_anthropic_routes
from trio_ollama.api.errors import APIError
from trio_ollama.api.metrics import CONTENT_TYPE as METRICS_TYPE
from trio_ollama.api.openai_responses_routes import add_responses_routes
from trio_ollama.api.openai_routes import add_openai_routes
from trio_ollama.api.responses import (
    Drain,
    combine_chat,
    combine_generate,
    combine_progress,
    error_response,
    json_response,
    parsed,
    request_scoped,
    stream_or_collect,
)
from trio_ollama.api.service import Service
from trio_ollama.concurrency import unwrap_single
from trio_ollama.store.errors import DigestMismatchError
from trio_ollama.store.layout import CHUNK, InvalidDigestError, normalize_digest
from trio_ollama.version import VERSION_HEADER, __version__

log = logging.getLogger(__name__)

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
ALLOWED_HEADERS = (
    "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, "
    "x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, "
    "x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
    "x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, "
    "x-stainless-runtime-version, x-stainless-timeout"
)


def host_allowed(host_header: str) -> bool:
    """Ollama's allowedHostsMiddleware: local names and addresses only (DNS rebinding)."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    host = host.lower()
    if host in ("", "localhost") or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == socket.gethostname().lower()
    return address.is_loopback or address.is_private or address.is_unspecified


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    return any(pattern == "*" or fnmatch.fnmatchcase(origin, pattern) for pattern in allowed)


def create_app(service: Service, drain: Drain | None = None) -> QuartTrio:
    """The app; `drain`, when given, is how the server's shutdown ends the requests in flight
    with an answer (`responses.Drain`)."""
    app = QuartTrio("trio_ollama")
    # A generation or an upload may take as long as it takes (Quart cuts both at 60 s).
    app.config.update(
        RESPONSE_TIMEOUT=None, BODY_TIMEOUT=None, MAX_CONTENT_LENGTH=None,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )  # fmt: skip
    settings = service.settings
    check_host = settings.host.is_loopback

    @app.before_request
    async def guard() -> Response | None:
        record = records.current()
        if record is not None and request.url_rule is not None:
            record.endpoint = request.url_rule.rule
        if check_host and not host_allowed(request.headers.get("Host", "")):
            return Response("", status=403)
        # A web page from a foreign origin may send simple requests (a text/plain POST) with no
        # preflight: refuse them all, as Ollama's CORS middleware does, or any site could drive
        # the server through its visitors' browsers.
        origin = request.headers.get("Origin")
        if origin and not origin_allowed(origin, settings.origins):
            return Response("", status=403)
        if request.method == "OPTIONS":
            return Response("", status=204)
        return None

    @app.after_request
    async def headers(response: Response) -> Response:
        # `/api/version` says which Ollama API this is; which server answers is said here.
        response.headers[VERSION_HEADER] = __version__
        origin = request.headers.get("Origin")
        if origin and origin_allowed(origin, settings.origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        return response

    @app.errorhandler(APIError)
    async def api_error(exc: APIError) -> Response:
        return error_response(exc)

    @app.errorhandler(404)
    async def not_found(_: Exception) -> Response:
        return Response("404 page not found", status=404, content_type="text/plain")

    @app.errorhandler(405)
    async def not_allowed(_: Exception) -> Response:
        return Response("405 method not allowed", status=405, content_type="text/plain")

    @app.errorhandler(Exception)
    async def crashed(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response({"error": str(exc) or type(exc).__name__}, 500)

    @app.route("/", methods=["GET", "HEAD", "OPTIONS"])
    async def root() -> Response:
        return Response("Ollama is running", content_type="text/plain; charset=utf-8")

    @app.route("/api/version", methods=["GET", "HEAD", "OPTIONS"])
    async def version() -> Response:
        return json_response(service.version())

    @app.route("/api/tags", methods=["GET", "HEAD", "OPTIONS"])
    async def tags() -> Response:
        return json_response(await service.tags())

    @app.route("/metrics", methods=["GET", "OPTIONS"])
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), content_type=METRICS_TYPE)

    @app.route("/api/ps", methods=["GET", "OPTIONS"])
    async def ps() -> Response:
        return json_response(await service.ps())

    @app.route("/api/show", methods=["POST", "OPTIONS"])
    async def show() -> Response:
        return json_response(await service.show(await parsed(schemas.ShowRequest)))

    @app.route("/api/copy", methods=["POST", "OPTIONS"])
    async def copy() -> Response:
        await service.copy(await parsed(schemas.CopyRequest))
        return Response("", status=200)

    @app.route("/api/delete", methods=["DELETE", "OPTIONS"])
    async def delete() -> Response:
        await service.delete(await parsed(schemas.DeleteRequest))
        return Response("", status=200)

    @app.route("/api/generate", methods=["POST", "OPTIONS"])
    async def generate() -> Response:
        req = await parsed(schemas.GenerateRequest)
        return await stream_or_collect(service.generate(req), req.stream, combine_generate)

    @app.route("/api/chat", methods=["POST", "OPTIONS"])
    async def chat() -> Response:
        req = await parsed(schemas.ChatRequest)
        return await stream_or_collect(service.chat(req), req.stream, combine_chat)

    @app.route("/api/embed", methods=["POST", "OPTIONS"])
    async def embed() -> Response:
        return json_response(await service.embed(await parsed(schemas.EmbedRequest)))

    @app.route("/api/embeddings", methods=["POST", "OPTIONS"])
    async def embeddings() -> Response:
        req = await parsed(schemas.EmbeddingsRequest)
        return json_response(await service.embeddings(req))

    @app.route("/api/create", methods=["POST", "OPTIONS"])
    async def create() -> Response:
        req = await parsed(schemas.CreateJSON)
        return await stream_or_collect(service.create(req), req.stream, combine_progress)

    @app.route("/api/pull", methods=["POST", "OPTIONS"])
    async def pull() -> Response:
        req = await parsed(schemas.PullRequest)
        return await stream_or_collect(service.pull(req), req.stream, combine_progress)

    @app.route("/api/push", methods=["POST", "OPTIONS"])
    async def push() -> Response:
        req = await parsed(schemas.PushRequest)
        return await stream_or_collect(service.push(req), req.stream, combine_progress)

    @app.route("/api/blobs/<digest>", methods=["HEAD", "POST", "OPTIONS"])
    async def blobs(digest: str) -> Response:
        exists = await service.blob_exists(digest)
        if request.method == "HEAD":
            if exists:
                return Response("", status=200)
            raise APIError(404, f'blob "{digest}" not found')
        if exists:
            return Response("", status=200)
        await upload_blob(service, digest)
        return Response("", status=201)

    add_openai_routes(app, service)
    add_anthropic_routes(app, service)
    add_responses_routes(app, service)
    app.asgi_app = request_scoped(  # type: ignore[method-assign,assignment]
        app.asgi_app, drain or Drain(), service.metrics
    )
    return app


async def upload_blob(service: Service, digest: str) -> None:
    """Stream the body to a temporary file, hashing it; publish only if the digest matches."""
    try:
        expected = normalize_digest(digest)
    except InvalidDigestError:
        raise APIError(400, "invalid digest format") from None
    send, receive = trio.open_memory_channel[bytes](4)

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                yield trio.from_thread.run(receive.receive)
            except trio.EndOfChannel:
                return

    def consume() -> None:
        service.store.write_blob_stream(chunks(), expected)

    async def produce() -> None:
        async with send:
            async for chunk in request.body:
                for i in range(0, len(chunk), CHUNK):
                    await send.send(bytes(chunk[i : i + CHUNK]))

    try:
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                await trio.to_thread.run_sync(consume)
    except DigestMismatchError as exc:
        raise APIError(400, str(exc)) from None
