"""`/v1/*`: the OpenAI layer, as Ollama's middleware does it: translate the request, run the
native service, translate the (streamed) answer. Translations live in `openai.py`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeVar

from quart import Response
from quart_trio import QuartTrio

from trio_ollama.api import openai as oa
from trio_ollama.api import schemas
from trio_ollama.api.errors import APIError
from trio_ollama.api.responses import (
    ChunkSource,
    as_request,
    collect,
    combine_chat,
    combine_generate,
    decoded,
    first_chunk,
    json_response,
    open_chunks,
)
from trio_ollama.api.service import Service

SSE_TYPE = "text/event-stream"

R = TypeVar("R")


def openai_error(exc: APIError) -> Response:
    return json_response(oa.error_body(exc.status, exc.message, exc.openai_type), exc.status)


def _openai_stream_error(exc: APIError) -> bytes:
    return oa.sse_event({"error": oa.error_body(exc.status, exc.message)["error"]})


async def respond(
    source: ChunkSource,
    stream: bool,
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]],
    reply: Callable[[dict[str, Any]], dict[str, Any]],
    events: Callable[[dict[str, Any]], list[bytes]],
    *,
    error_reply: Callable[[APIError], Response] = openai_error,
    stream_error: Callable[[APIError], bytes] = _openai_stream_error,
) -> Response:
    """A translated answer: one object (`reply` of the combined chunks) or server-sent
    `events`. An error before the answer begins is `error_reply`'s, with its own status; one
    after is a last `stream_error` event. Every compatibility layer answers through this."""
    chunks = await open_chunks(source)
    try:
        first = await first_chunk(chunks)
        if not stream:
            return json_response(reply(combine(await collect(first, chunks))))
    except APIError as exc:
        return error_reply(exc)

    async def body() -> AsyncIterator[bytes]:
        with chunks:
            for event in events(first):
                yield event
            async for item in chunks:
                if isinstance(item, APIError):
                    yield stream_error(item)
                    return
                for event in events(item):
                    yield event

    return Response(body(), content_type=SSE_TYPE)


class _Reply(Protocol):
    def __call__(self, native: Mapping[str, Any], *, id: str, created: int) -> dict[str, Any]: ...


async def _generation(
    translate: Callable[[bytes], tuple[R, oa.ReplyOptions]],
    run: Callable[[R], ChunkSource],
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]],
    new_id: Callable[[], str],
    reply: _Reply,
    stream: Callable[[str, int, bool], oa.ChatStream | oa.CompletionStream],
) -> Response:
    """A chat or a completion, which differ only in these parts: the body `translate`d to the
    native request, `run`, and its answer as one `reply` or a `stream`, under one new id."""
    try:
        request, options = await decoded(translate)
    except APIError as exc:
        return openai_error(exc)
    ident, created = new_id(), int(time.time())
    return await respond(
        run(request),
        options.stream,
        combine,
        lambda final: reply(final, id=ident, created=created),
        stream(ident, created, options.include_usage).events,
    )


def add_openai_routes(app: QuartTrio, service: Service) -> None:
    @app.route("/v1/chat/completions", methods=["POST", "OPTIONS"])
    async def v1_chat_completions() -> Response:
        return await _generation(
            lambda raw: as_request(schemas.ChatRequest, oa.chat_request(oa.decode_body(raw))),
            service.chat,
            combine_chat,
            oa.chat_completion_id,
            oa.chat_completion,
            oa.ChatStream,
        )

    @app.route("/v1/completions", methods=["POST", "OPTIONS"])
    async def v1_completions() -> Response:
        return await _generation(
            lambda raw: as_request(
                schemas.GenerateRequest, oa.completion_request(oa.decode_body(raw))
            ),
            service.generate,
            combine_generate,
            oa.completion_id,
            oa.completion,
            oa.CompletionStream,
        )

    @app.route("/v1/embeddings", methods=["POST", "OPTIONS"])
    async def v1_embeddings() -> Response:
        try:
            native, options = await decoded(lambda raw: oa.embeddings_request(oa.decode_body(raw)))
            result = await service.embed(schemas.EmbedRequest.from_json(native))
        except APIError as exc:
            return openai_error(exc)
        return json_response(oa.embeddings(result, options.model, options.encoding_format))

    @app.route("/v1/models", methods=["GET", "OPTIONS"])
    async def v1_models() -> Response:
        return json_response(oa.models_list((await service.tags())["models"]))

    @app.route("/v1/models/<path:model>", methods=["GET", "OPTIONS"])
    async def v1_model(model: str) -> Response:
        try:
            details = await service.details(model, not_found="model '{name}' not found")
        except APIError as exc:
            return openai_error(exc)
        return json_response(oa.model_retrieve(model, details.modified_at))
