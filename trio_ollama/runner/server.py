"""The runner's side of the protocol: a Trio loop that owns one engine and one stream.

`serve_runner` reads requests, feeds the engine between decode steps, and writes results through
a single writer task (a stream allows one sender at a time). EOF from the parent ends everything:
that is how a runner notices that its parent has died, even by SIGKILL.
"""

from __future__ import annotations

import logging
import math

import trio

from trio_ollama.runner.interface import Engine, EngineCrashed, InvalidRequest
from trio_ollama.runner.protocol import (
    TOKENS_PER_FRAME,
    Cancel,
    Completion,
    Detokenize,
    Embed,
    Fatal,
    FrameDecoder,
    FrameTooLarge,
    Load,
    Message,
    Ping,
    Pong,
    ProtocolError,
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
READ_SIZE = 65536


class _Runner:
    def __init__(self, stream: trio.abc.Stream, engine: Engine) -> None:
        self.stream = stream
        self.engine = engine
        self.decoder = FrameDecoder()
        self.outbox_send, self.outbox_receive = trio.open_memory_channel[Message](math.inf)
        self.work = trio.Event()

    async def read_message(self) -> Message | None:
        """The next message; None when the parent has gone (`ProtocolError` mid-frame)."""
        while True:
            for msg in self.decoder:
                return msg
            data = await self.stream.receive_some(READ_SIZE)
            if not data:
                self.decoder.feed_eof()
                return None
            self.decoder.feed(data)

    async def writer(self) -> None:
        """Sends what the outbox holds, in order, until the outbox is closed and drained."""
        async with self.outbox_receive:
            async for msg in self.outbox_receive:
                try:
                    frame = encode(msg)
                except FrameTooLarge as exc:
                    if not isinstance(msg, Reply):
                        raise
                    # A reply too large to send (the text of a huge detokenize, say) fails
                    # its own request; the runner and its other requests go on.
                    frame = encode(RequestFailed(id=msg.id, message=str(exc), invalid=True))
                await self.stream.send_all(frame)

    def send(self, msg: Message) -> None:
        self.outbox_send.send_nowait(msg)

    def tokens(self, msg: Tokenize) -> None:
        tokens = self.engine.tokenize(msg.text, msg.add_special)
        if msg.count_only:
            self.send(Tokens(msg.id, [], len(tokens)))
            return
        last = max(0, len(tokens) - 1) // TOKENS_PER_FRAME * TOKENS_PER_FRAME
        for start in range(0, last, TOKENS_PER_FRAME):
            self.send(TokensPart(msg.id, tokens[start : start + TOKENS_PER_FRAME]))
        self.send(Tokens(msg.id, tokens[last:], len(tokens)))

    async def engine_loop(self, done: trio.CancelScope) -> None:
        try:
            while True:
                if not self.engine.has_work:
                    await self.work.wait()
                    self.work = trio.Event()
                    continue
                for msg in await self.engine.step():
                    self.send(msg)
        except EngineCrashed as exc:
            log.error("engine crashed: %s", exc)
            done.cancel()  # stop without a word, as a dying process would

    def handle(self, msg: Message) -> None:
        engine = self.engine
        if isinstance(msg, Completion):
            engine.submit(msg)
        elif isinstance(msg, Embed):
            engine.submit_embed(msg)
        elif isinstance(msg, Cancel):
            engine.cancel(msg.id)
        elif isinstance(msg, Tokenize):
            self.tokens(msg)
        elif isinstance(msg, Detokenize):
            self.send(Text(msg.id, engine.detokenize(msg.tokens)))
        elif isinstance(msg, Ping):
            self.send(Pong(msg.id))
        elif isinstance(msg, SetThreads):
            engine.set_threads(msg.n_threads)
        else:
            log.warning("runner ignores unexpected %s message", msg.kind)
            return
        self.work.set()


async def serve_runner(stream: trio.abc.Stream, engine: Engine) -> None:
    """Load the model the first message asks for, then serve until the parent goes away."""
    runner = _Runner(stream, engine)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.writer)
            # Every way out of this block closes the outbox, so the writer drains what is left
            # (a Fatal, say) and ends, and the nursery can finish: no state waits forever.
            with runner.outbox_send:
                first = await runner.read_message()
                if not isinstance(first, Load):
                    if first is not None:
                        log.error("runner expected a load message, got %s", first.kind)
                    return
                try:
                    ready = await engine.load(first)
                except Exception as exc:
                    log.exception("model load failed")
                    runner.send(Fatal(f"failed to load model: {exc}"))
                    return
                runner.send(ready)
                nursery.start_soon(runner.engine_loop, nursery.cancel_scope)
                while (msg := await runner.read_message()) is not None:
                    try:
                        runner.handle(msg)
                    except Exception as exc:
                        # One message's failure is that message's, never the runner's end.
                        if isinstance(msg, Request):
                            invalid = isinstance(exc, InvalidRequest)
                            runner.send(RequestFailed(id=msg.id, message=str(exc), invalid=invalid))
                        else:
                            log.exception("runner could not handle %s", msg.kind)
                # The parent has gone: nobody is left to answer, so stop at once.
                nursery.cancel_scope.cancel()
    except* ProtocolError as group:
        log.error("runner protocol error: %s", group.exceptions[0])
    except* (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the parent went away while we were writing
    finally:
        engine.close()
