"""Responses as Ollama sends them: Go-encoded JSON, NDJSON streams whose first chunk is computed
before the status goes out (so an error before any output gets its own status, and one after
becomes a final `{"error": ...}` line), and request bodies read with a size limit.

Leaving a stream early (the client hung up) cancels the handler, which closes the chunk iterator,
which leaves the scheduler's `acquire` scope: the runner slot is free at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from quart import Response, request

from trio_ollama.api import schemas
from trio_ollama.api.errors import APIError
from trio_ollama.api.schemas import R
from trio_ollama.gocompat import gojson

JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"
# JSON bodies are read whole; images make them large, but not this large.
MAX_JSON_BODY = 64 * 1024 * 1024


def json_response(value: Any, status: int = 200) -> Response:
    return Response(gojson.dumps(value), status=status, content_type=JSON_TYPE)


def error_response(exc: APIError) -> Response:
    return json_response({"error": exc.message}, exc.status)


async def read_body(limit: int = MAX_JSON_BODY) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise APIError(413, f"request body exceeds {limit} bytes")
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > limit:
            raise APIError(413, f"request body exceeds {limit} bytes")
    return bytes(data)


async def parsed(kind: type[R]) -> R:
    """The request body, decoded and checked as `kind` declares it."""
    return schemas.decode_request(kind, await read_body())


def _line(value: Any) -> bytes:
    return gojson.encode(value)


Chunks = AsyncGenerator[dict[str, Any], None]


async def first_chunk(chunks: Chunks) -> dict[str, Any]:
    """The first chunk, computed before any status is sent; errors close the stream."""
    try:
        return await chunks.__anext__()
    except BaseException:
        await chunks.aclose()
        raise


async def collect(first: dict[str, Any], chunks: Chunks) -> list[dict[str, Any]]:
    """The rest of the chunks; closed explicitly whatever happens, so that a cancelled
    collection (the client hung up) leaves the runner and the scheduler at once rather than
    whenever the garbage collector gets to the generator."""
    async with aclosing(chunks):
        return [first, *[chunk async for chunk in chunks]]


async def stream_or_collect(
    chunks: Chunks,
    stream: bool,
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> Response:
    """NDJSON when streaming, else one combined object; see the module docstring for errors."""
    try:
        first = await first_chunk(chunks)
    except APIError as exc:
        return error_response(exc)
    if first.get("done") and first.get("done_reason") in ("load", "unload"):
        await chunks.aclose()
        return json_response(first)  # Ollama answers the shortcuts with one object
    if not stream:
        try:
            return json_response(combine(await collect(first, chunks)))
        except APIError as exc:
            return error_response(exc)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield _line(first)
            async for chunk in chunks:
                yield _line(chunk)
        except APIError as exc:
            yield _line({"error": exc.message})
        finally:
            await chunks.aclose()

    return Response(body(), content_type=NDJSON_TYPE)


def combine_generate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    final = dict(chunks[-1])
    final["response"] = "".join(c.get("response", "") for c in chunks)
    return final


def combine_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    final = dict(chunks[-1])
    message = dict(final.get("message") or {"role": "assistant"})
    message["content"] = "".join(c.get("message", {}).get("content", "") for c in chunks)
    final["message"] = message
    return final


def combine_progress(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return chunks[-1]
