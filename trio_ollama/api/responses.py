"""Responses as Ollama sends them: Go-encoded JSON, NDJSON streams whose first chunk is computed
before the status goes out (so an error before any output gets its own status, and one after
becomes a final `{"error": ...}` line), and request bodies read with a size limit.

A stream's chunks come from a task owned by the request (`request_scoped`): when the request
ends, by completion or because the client hung up, that task is cancelled, which leaves the
scheduler's `acquire` scope: the runner slot is free at once, by construction rather than by
every caller remembering to close a generator.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import trio
from quart import Response, request

from trio_ollama.api import records, schemas
from trio_ollama.api.errors import APIError
from trio_ollama.api.metrics import Metrics
from trio_ollama.api.records import RequestRecord
from trio_ollama.api.schemas import R
from trio_ollama.concurrency import unwrap_single
from trio_ollama.config import MAX_JSON_BODY
from trio_ollama.gocompat import gojson

log = logging.getLogger(__name__)
# One line per HTTP request, as Ollama's request log; its own logger, so it can be silenced.
request_log = logging.getLogger("trio_ollama.requests")

JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"
# ... nor this slow: a body has a minute, plus a second for every 16 KiB that has arrived, so a
# 20 MB image over a slow link (100 KB/s) is read whole, while a client dripping a byte at a time
# is cut after a minute (a rule like Apache's mod_reqtimeout, where a pure idle timeout would
# let one byte a minute hold a connection for ever).
BODY_SECONDS = 60.0
BODY_MIN_RATE = 16 * 1024
# A body this large is decoded in a worker thread: 50 MB of JSON holds the event loop, and every
# other request with it, for about half a second; a small one is not worth the thread's hop.
DECODE_IN_THREAD = 1 << 20

T = TypeVar("T")
Opts = TypeVar("Opts")


def json_response(value: Any, status: int = 200) -> Response:
    return Response(gojson.dumps(value), status=status, content_type=JSON_TYPE)


def error_response(exc: APIError) -> Response:
    return json_response({"error": exc.message}, exc.status)


async def read_body(limit: int = MAX_JSON_BODY, seconds: float = BODY_SECONDS) -> bytes:
    """A JSON body, whole: at most `limit` bytes, within `seconds` plus a second for each
    `BODY_MIN_RATE` bytes received (see `BODY_SECONDS`)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise APIError(413, f"request body exceeds {limit} bytes")
    data = bytearray()
    start = trio.current_time()
    with trio.CancelScope(deadline=start + seconds) as timer:
        async for chunk in request.body:
            data += chunk
            if len(data) > limit:
                raise APIError(413, f"request body exceeds {limit} bytes")
            timer.deadline = start + seconds + len(data) / BODY_MIN_RATE
    if timer.cancelled_caught:
        raise APIError(
            408,
            f"request body too slow: {len(data)} bytes in {trio.current_time() - start:.0f} "
            f"seconds (allowed: {seconds:g} seconds and one more for each {BODY_MIN_RATE} bytes)",
        )
    return bytes(data)


async def decoded(decode: Callable[[bytes], T]) -> T:
    """The request body (`read_body`), decoded by `decode`: off the event loop when large."""
    raw = await read_body()
    if len(raw) < DECODE_IN_THREAD:
        return decode(raw)
    return await trio.to_thread.run_sync(decode, raw)


def as_request(kind: type[R], translated: tuple[dict[str, Any], Opts]) -> tuple[R, Opts]:
    """A compatibility layer's translation (a native body and its own options), checked as the
    native request `kind`."""
    native, options = translated
    return kind.from_json(native), options


async def parsed(kind: type[R]) -> R:
    """The request body, decoded and checked as `kind` declares it."""
    return await decoded(functools.partial(schemas.decode_request, kind))


def _line(value: Any) -> bytes:
    return gojson.encode(value)


# A streaming answer, as the route reads it: chunks, then possibly an error (an answer too, which
# ends the stream), from a producer task that lives exactly as long as the HTTP request.
Chunks = trio.MemoryReceiveChannel[dict[str, Any] | APIError]
ChunkSource = AbstractAsyncContextManager[trio.abc.ReceiveChannel[dict[str, Any]]]
# An ASGI application (scope, receive, send), loosely typed: hypercorn and Quart spell it apart.
ASGIApp = Callable[[Any, Any, Any], Coroutine[Any, Any, None]]

_REQUEST_NURSERY: ContextVar[trio.Nursery] = ContextVar("trio_ollama_request_nursery")
_DRAIN: ContextVar[Drain] = ContextVar("trio_ollama_drain")

SHUTTING_DOWN = "server is shutting down"


class Drain:
    """The work of the requests in flight, so that the end of a shutdown's grace period can
    answer each of them (a 503 before the response starts, a last `{"error"}` line in a stream)
    instead of cutting its connection: the server closes it, the client still learns why."""

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self.closed = False

    def close(self) -> None:
        """End all the work registered now and refuse any that registers later."""
        self.closed = True
        for scope in self._scopes:
            scope.cancel()

    @contextmanager
    def scope(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that `close` cancels; see `cancelled_caught` afterwards."""
        with trio.CancelScope() as scope:
            if self.closed:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def release(self, scope: trio.CancelScope) -> None:
        """`scope`'s work may no longer be ended by `close` (its answer has begun)."""
        self._scopes.discard(scope)


def request_scoped(app: ASGIApp, drain: Drain, metrics: Metrics) -> ASGIApp:
    """Give each HTTP request a nursery that ends with it (response sent, or client gone), and
    an answer of its own when `drain` closes.

    A route must compute the first chunk of a stream before it answers (the status depends on
    it), yet the stream goes on after the route has returned its `Response`. The producer of
    the chunks therefore runs as a task in this nursery: however the response ends, even if the
    response body is never read or closed, the producer is cancelled when the request ends.

    Until its response starts, the whole request is `drain`'s to end, with a 503 sent here;
    after that, a stream's producer is (it turns the end into a last error line).

    When the request ends, its record (`records.RequestRecord`) becomes one log line and the
    request's metrics.
    """

    async def scoped(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        started = False
        record = RequestRecord(scope.get("method", ""), scope.get("path", ""), trio.current_time())
        record_token = records.begin(record)
        # While the response's last part is written, anycorn ends the exchange: it tells the
        # app the stream is closed (`http.disconnect`) and then, on a kept-alive connection,
        # starts the connection's idle timer, still inside this send. quart-trio cancels the
        # request's tasks as soon as it hears the disconnect, and the idle timer, started from
        # a cancelled task, died with them: an idle connection then stayed open for good, and
        # a shutdown waited its whole grace period for it. So the disconnect waits for the
        # write.
        last_part: trio.Event | None = None
        answered = False

        def answer() -> None:
            nonlocal answered
            if not answered:
                answered = True
                _answered(record, metrics)

        with drain.scope() as work:

            async def tracked(message: Any) -> None:
                nonlocal started, last_part
                if message["type"] == "http.response.start":
                    # Before the first checkpoint of the send: from here on a cancel from the
                    # drain could cut a write in half.
                    drain.release(work)
                    started = True
                    record.status = message.get("status", 0)
                if message["type"] != "http.response.body" or message.get("more_body", False):
                    await send(message)
                    return
                # Counted before the client can see the end: a client that reads the whole
                # answer and then asks for /metrics finds its request there.
                answer()
                last_part = trio.Event()
                try:
                    await send(message)
                finally:
                    last_part.set()

            async def heard() -> Any:
                message = await receive()
                if message.get("type") == "http.disconnect" and last_part is not None:
                    await last_part.wait()
                return message

            with unwrap_single():
                async with trio.open_nursery() as nursery:
                    nursery_token = _REQUEST_NURSERY.set(nursery)
                    drain_token = _DRAIN.set(drain)
                    try:
                        await app(scope, heard, tracked)
                    finally:
                        _DRAIN.reset(drain_token)
                        _REQUEST_NURSERY.reset(nursery_token)
                        nursery.cancel_scope.cancel()
        try:
            if work.cancelled_caught and not started:
                record.status = 503
                body = gojson.dumps({"error": SHUTTING_DOWN}).encode()
                headers = [(b"content-type", JSON_TYPE.encode()), (b"connection", b"close")]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            records.end(record_token)
            answer()

    return scoped


def _answered(record: RequestRecord, metrics: Metrics) -> None:
    """The request's log line (as Ollama logs each request) and its metrics. A request that
    ended before any status (the client hung up first) is logged with status 0."""
    duration = trio.current_time() - record.started
    # The path is the client's: quoted if it holds anything unprintable (a %0A would forge a
    # second log line).
    path = record.path if record.path.isprintable() else repr(record.path)
    request_log.info(
        "%s %s %d", record.method, path, record.status, extra=record.log_fields(duration)
    )
    metrics.answered(record.model, record.endpoint or "unmatched", record.status, duration)


async def open_chunks(source: ChunkSource) -> Chunks:
    """The chunks of `source` (a `trio.as_safe_channel` stream), for the rest of this request."""
    send, receive = trio.open_memory_channel[dict[str, Any] | APIError](0)
    await _REQUEST_NURSERY.get().start(_produce, source, send)
    return receive


async def _produce(
    source: ChunkSource,
    send: trio.MemorySendChannel[dict[str, Any] | APIError],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    with send:
        task_status.started()
        try:
            with _DRAIN.get().scope() as work:
                async with source as chunks:
                    async for chunk in chunks:
                        if not await _deliver(send, chunk):
                            return
            if work.cancelled_caught:
                raise APIError(503, SHUTTING_DOWN)
        except APIError as exc:
            await _deliver(send, exc)
        except Exception as exc:
            # A bug, not an answer: still one request's failure, never the server's. The client
            # gets a 500 (or a last error line), the log gets the traceback.
            log.exception("a response stream failed")
            await _deliver(send, APIError(500, f"internal error: {type(exc).__name__}: {exc}"))


async def _deliver(
    send: trio.MemorySendChannel[dict[str, Any] | APIError], item: dict[str, Any] | APIError
) -> bool:
    """Hand one item to the response; False once nobody reads (the response has ended, and so
    will this request)."""
    try:
        await send.send(item)
    except trio.BrokenResourceError:
        return False
    return True


async def first_chunk(chunks: Chunks) -> dict[str, Any]:
    """The first chunk, computed before any status is sent; `APIError` if the stream failed."""
    try:
        item = await chunks.receive()
    except trio.EndOfChannel:
        raise APIError(500, "the answer ended before it began") from None
    if isinstance(item, APIError):
        raise item
    return item


async def collect(first: dict[str, Any], chunks: Chunks) -> list[dict[str, Any]]:
    """Every chunk, for a non-streaming answer; `APIError` if the stream failed."""
    out = [first]
    with chunks:
        async for item in chunks:
            if isinstance(item, APIError):
                raise item
            out.append(item)
    return out


async def stream_or_collect(
    source: ChunkSource,
    stream: bool,
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> Response:
    """NDJSON when streaming, else one combined object; see the module docstring for errors."""
    chunks = await open_chunks(source)
    try:
        first = await first_chunk(chunks)
    except APIError as exc:
        return error_response(exc)
    if first.get("done") and first.get("done_reason") in ("load", "unload"):
        return json_response(first)  # Ollama answers the shortcuts with one object
    if not stream:
        try:
            return json_response(combine(await collect(first, chunks)))
        except APIError as exc:
            return error_response(exc)

    async def body() -> AsyncIterator[bytes]:
        with chunks:
            yield _line(first)
            async for item in chunks:
                if isinstance(item, APIError):
                    yield _line({"error": item.message})
                    return
                yield _line(item)

    return Response(body(), content_type=NDJSON_TYPE)


def combine_generate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Ollama's non-streamed generate: `response` and `thinking` (after it, as Go's field order
    has it) are every chunk's joined; the rest is the final chunk's."""
    last = chunks[-1]
    thinking = "".join(c.get("thinking", "") for c in chunks)
    final: dict[str, Any] = {}
    for key, value in last.items():
        if key == "thinking":
            continue
        final[key] = value
        if key == "response":
            final[key] = "".join(c.get("response", "") for c in chunks)
            if thinking:
                final["thinking"] = thinking
    return _all_logprobs(final, chunks)


def _all_logprobs(final: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    logprobs = [entry for c in chunks for entry in c.get("logprobs", ())]
    final.pop("logprobs", None)
    if logprobs:
        final["logprobs"] = logprobs
    return final


def combine_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Ollama's non-streamed chat: the message's `content` and `thinking` joined, its
    `tool_calls` gathered from every chunk; the rest is the final chunk's."""
    final = dict(chunks[-1])
    messages = [c.get("message") or {} for c in chunks]
    message: dict[str, Any] = {"role": (final.get("message") or {}).get("role", "assistant")}
    message["content"] = "".join(m.get("content", "") for m in messages)
    thinking = "".join(m.get("thinking", "") for m in messages)
    if thinking:
        message["thinking"] = thinking
    calls = [call for m in messages for call in m.get("tool_calls", ())]
    if calls:
        message["tool_calls"] = calls
    final["message"] = message
    return _all_logprobs(final, chunks)


def combine_progress(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return chunks[-1]
