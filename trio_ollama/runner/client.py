"""The parent's side of the protocol: one `RunnerClient` per runner, shared by many requests.

A single reader task routes each incoming message to the request it answers (by id). Requests
are async context managers, so that leaving one early, by error or by a client that hung up,
tells the runner to drop it at its next step.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from trio_ollama.runner.protocol import (
    TERMINAL,
    Cancel,
    Completion,
    Detokenize,
    Done,
    Embed,
    Embedding,
    Fatal,
    FrameDecoder,
    FrameTooLarge,
    Load,
    Message,
    Piece,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Reply,
    Request,
    RequestFailed,
    SetThreads,
    Text,
    Tokenize,
    Tokens,
    TokensPart,
    encode,
)

log = logging.getLogger(__name__)


class RunnerError(Exception):
    """A request the runner could not serve; `invalid` when the request itself is at fault."""

    def __init__(self, message: str, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


class RunnerGoneError(RunnerError):
    """The runner process ended (crashed, was killed, or closed) while the request was open."""


class LoadError(RunnerError):
    """The runner could not load its model."""


_GONE = object()


class CompletionStream:
    """The pieces of one completion, then its `Done`. Raises `RunnerError` on failure."""

    def __init__(self, receive: trio.MemoryReceiveChannel[object]) -> None:
        self._receive = receive
        self.done: Done | None = None
        self._generator: AsyncGenerator[Piece | Done, None] | None = None

    def __aiter__(self) -> AsyncIterator[Piece | Done]:
        if self._generator is None:
            self._generator = self._iterate()
        return self._generator

    async def aclose(self) -> None:
        """Close the iteration, so that a reader that stops early leaves no generator for the
        garbage collector to finalize (`contextlib.aclosing(stream)`)."""
        if self._generator is not None:
            await self._generator.aclose()

    async def _iterate(self) -> AsyncGenerator[Piece | Done, None]:
        async for item in self._receive:
            if isinstance(item, RunnerError):
                raise item
            assert isinstance(item, Piece | Done)
            if isinstance(item, Done):
                self.done = item
            yield item
            if isinstance(item, Done):
                return


class RunnerClient:
    def __init__(self, stream: trio.abc.Stream, pid: int | None = None) -> None:
        self.stream = stream
        self.pid = pid
        self.ready: Ready | None = None
        self.closed = trio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, trio.MemorySendChannel[object]] = {}
        self._send_lock = trio.StrictFIFOLock()
        self._decoder = FrameDecoder()
        self._gone_reason = "runner process exited"

    @property
    def dead(self) -> bool:
        return self.closed.is_set()

    async def _send(self, msg: Message) -> None:
        if self.dead:
            raise RunnerGoneError(self._gone_reason)
        try:
            frame = encode(msg)
        except FrameTooLarge as exc:
            raise RunnerError(f"request too large: {exc}", invalid=True) from None
        try:
            async with self._send_lock:
                await self.stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise RunnerGoneError(self._gone_reason) from exc

    async def _read(self) -> Message | None:
        """The next message, or None at the end of the stream (`ProtocolError` if it ended
        inside a frame, or the bytes are not a message)."""
        while True:
            for msg in self._decoder:
                return msg
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._decoder.feed_eof()
                return None
            self._decoder.feed(data)

    async def handshake(self, load: Load) -> Ready:
        """Send `load` and wait for `Ready`; `LoadError` if the runner fails or exits first."""
        try:
            await self._send(load)
            first = await self._read()
        except (RunnerGoneError, ProtocolError):
            first = None
        if not isinstance(first, Ready):
            self.closed.set()
            if isinstance(first, Fatal):
                raise LoadError(first.message)
            raise LoadError("runner exited before the model was loaded")
        self.ready = first
        return first

    async def read_loop(self) -> None:
        """Route replies to their requests until the runner closes; then fail what is left."""
        try:
            while (msg := await self._read()) is not None:
                if isinstance(msg, Fatal):
                    self._gone_reason = f"runner failed: {msg.message}"
                    log.error("runner failed", extra={"pid": self.pid, "reason": msg.message})
                    break
                if isinstance(msg, Reply):
                    self._route(msg)
                else:
                    log.warning("unexpected %s message from the runner", msg.kind)
        except ProtocolError as exc:
            self._gone_reason = f"runner protocol error: {exc}"
            log.error("runner protocol error", extra={"pid": self.pid, "reason": str(exc)})
        finally:
            self.closed.set()
            for channel in self._pending.values():
                channel.send_nowait(RunnerGoneError(self._gone_reason))
                channel.close()
            self._pending.clear()

    def _route(self, msg: Reply) -> None:
        channel = self._pending.get(msg.id)
        if channel is None:
            return  # an answer to a request that has already gone away
        if isinstance(msg, RequestFailed):
            channel.send_nowait(RunnerError(msg.message, msg.invalid))
        else:
            channel.send_nowait(msg)
        if type(msg) in TERMINAL:
            del self._pending[msg.id]
            channel.close()

    @asynccontextmanager
    async def _request(self, msg: Request) -> AsyncIterator[trio.MemoryReceiveChannel[object]]:
        send, receive = trio.open_memory_channel[object](math.inf)
        request_id = msg.id
        self._pending[request_id] = send
        try:
            await self._send(msg)
            yield receive
        finally:
            if self._pending.pop(request_id, None) is not None and not self.dead:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    try:
                        await self._send(Cancel(request_id))
                    except RunnerGoneError:
                        pass

    async def _call(self, msg: Request) -> object:
        async with self._request(msg) as receive:
            item = await receive.receive()
            if isinstance(item, RunnerError):
                raise item
            return item

    @asynccontextmanager
    async def completion(self, request: Completion) -> AsyncIterator[CompletionStream]:
        """`async with runner.completion(req) as stream: async for piece in stream: ...`"""
        msg = attrs.evolve(request, id=next(self._ids))
        async with self._request(msg) as receive:
            yield CompletionStream(receive)

    async def embed(self, text: str, truncate: bool = True) -> Embedding:
        result = await self._call(Embed(id=next(self._ids), text=text, truncate=truncate))
        assert isinstance(result, Embedding)
        return result

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        msg = Tokenize(id=next(self._ids), text=text, add_special=add_special)
        tokens: list[int] = []
        async with self._request(msg) as receive:
            while True:
                item = await receive.receive()
                if isinstance(item, RunnerError):
                    raise item
                assert isinstance(item, Tokens | TokensPart)
                tokens += item.tokens
                if isinstance(item, Tokens):
                    return tokens

    async def count_tokens(self, text: str, add_special: bool = True) -> int:
        """`len(await tokenize(text))`, with only the count sent back."""
        msg = Tokenize(id=next(self._ids), text=text, add_special=add_special, count_only=True)
        result = await self._call(msg)
        assert isinstance(result, Tokens)
        return result.count

    async def detokenize(self, tokens: list[int]) -> str:
        result = await self._call(Detokenize(next(self._ids), tokens))
        assert isinstance(result, Text)
        return result.text

    async def ping(self) -> None:
        result = await self._call(Ping(next(self._ids)))
        assert isinstance(result, Pong)

    async def set_threads(self, n_threads: int) -> None:
        await self._send(SetThreads(n_threads))

    async def aclose(self) -> None:
        await self.stream.aclose()
