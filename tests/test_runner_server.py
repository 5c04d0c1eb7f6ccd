"""`serve_runner` ends when its parent goes away, in every state: before any message, after a
wrong first message, after a failed load, mid-frame, and while requests are in flight. Each case
runs the real serving loop over an in-memory stream with the fake engine, under a deadline (the
hang this guards against was a writer task waiting forever on an outbox nobody closed)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import trio
import trio.testing

from trio_ollama.runner.client import RunnerClient
from trio_ollama.runner.fake import FakeConfig, FakeEngine
from trio_ollama.runner.inprocess import InProcessRunner
from trio_ollama.runner.protocol import (
    Completion,
    Fatal,
    FrameDecoder,
    Load,
    Message,
    Piece,
    Ping,
    Ready,
    Sampling,
    Tokens,
    TokensPart,
    encode,
)
from trio_ollama.runner.server import serve_runner

LOAD = Load(model_path="/fake.gguf", num_ctx=64)


async def replies(stream: trio.abc.Stream) -> list[Message]:
    """Everything the runner sends until it closes its end."""
    decoder = FrameDecoder()
    out: list[Message] = []
    while data := await stream.receive_some(65536):
        decoder.feed(data)
        out.extend(decoder)
    decoder.feed_eof()
    return out


async def serve(engine: FakeEngine, parent_side: list[bytes], *, close: bool) -> list[Message]:
    """Run the runner; the parent sends `parent_side`, then closes its end if `close`."""
    parent, child = trio.testing.memory_stream_pair()

    async def runner() -> None:
        try:
            await serve_runner(child, engine)
        finally:
            await child.aclose()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner)
            for data in parent_side:
                await parent.send_all(data)
            if close:
                await parent.send_eof()
            got = await replies(parent)
    assert engine.closed, "the engine is always closed on the way out"
    return got


async def test_eof_before_any_message_ends_the_runner() -> None:
    assert await serve(FakeEngine(), [], close=True) == []


async def test_a_first_message_that_is_not_a_load_ends_the_runner() -> None:
    # The parent keeps its end open: the runner must still end (it used to hang here).
    assert await serve(FakeEngine(), [encode(Ping(1))], close=False) == []


async def test_a_failed_load_sends_fatal_then_ends_the_runner() -> None:
    engine = FakeEngine(FakeConfig(fail_load="no such file"))
    got = await serve(engine, [encode(LOAD)], close=False)
    assert got == [Fatal("failed to load model: no such file")]


async def test_eof_inside_a_frame_ends_the_runner(caplog: pytest.LogCaptureFixture) -> None:
    got = await serve(FakeEngine(), [encode(LOAD), encode(Ping(2))[:5]], close=True)
    # Whether `Ready` got out before the end is a race the runner need not win.
    assert [type(m) for m in got] in ([], [Ready])
    assert "stream ended inside a frame (5 bytes of it received)" in caplog.text


async def test_eof_with_requests_in_flight_ends_the_runner() -> None:
    # A slow engine: the completion is still generating when the parent goes away.
    engine = FakeEngine(FakeConfig(tokens_per_second=50), in_process=True)
    request = Completion(id=3, prompt="x", sampling=Sampling(num_predict=1000))
    parent, child = trio.testing.memory_stream_pair()
    decoder = FrameDecoder()
    seen: list[Message] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_runner, child, engine)
            await parent.send_all(encode(LOAD) + encode(request))
            while sum(isinstance(m, Piece) for m in seen) < 3:
                decoder.feed(await parent.receive_some(65536))
                seen.extend(decoder)
            await parent.send_eof()  # the parent dies mid-stream
    assert isinstance(seen[0], Ready) and engine.closed
    assert engine.total_tokens < 1000


@pytest.mark.slow
def test_a_runner_process_given_a_wrong_first_message_exits() -> None:
    """The same through a real `python -m trio_ollama.runner` process and socket."""
    parent, child = socket.socketpair()
    with child:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trio_ollama.runner", "--fd", str(child.fileno()), "--engine",
             "fake"],
            pass_fds=(child.fileno(),),
        )  # fmt: skip
    with parent:
        parent.sendall(encode(Ping(1)))
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
def test_feed_eof_reports_a_half_received_frame(cut: int) -> None:
    from trio_ollama.runner.protocol import ProtocolError

    decoder = FrameDecoder()
    decoder.feed(encode(Ping(7))[:cut])
    assert list(decoder) == []
    with pytest.raises(ProtocolError, match="inside a frame"):
        decoder.feed_eof()


def test_feed_eof_after_whole_frames_is_fine_and_final() -> None:
    from trio_ollama.runner.protocol import ProtocolError

    decoder = FrameDecoder()
    decoder.feed(encode(Ping(7)) + encode(Ping(8)))
    assert list(decoder) == [Ping(7), Ping(8)]
    decoder.feed_eof()
    with pytest.raises(ProtocolError):
        decoder.feed(b"late")


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 30])
async def test_a_long_tokenization_comes_in_parts_that_each_fit_a_frame(
    monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    """A 60 MB prompt is 15 million ids, more than one frame holds: the runner sends them in
    parts (eight ids a part here), the client joins them, and a count sends no ids at all."""
    monkeypatch.setattr("trio_ollama.runner.server.TOKENS_PER_FRAME", 8)
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    sent: list[Message] = []
    real_encode = encode

    def spy(msg: Message) -> bytes:
        sent.append(msg)
        return real_encode(msg)

    monkeypatch.setattr("trio_ollama.runner.server.encode", spy)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            runner = InProcessRunner(LOAD, FakeEngine(in_process=True))
            client: RunnerClient = await nursery.start(runner.run)
            assert await client.tokenize(text) == list(text.encode())
            assert await client.count_tokens(text) == length
            nursery.cancel_scope.cancel()
    replies = [m for m in sent if isinstance(m, TokensPart | Tokens)]
    # The tokenization: full parts of eight, then a last `Tokens` with the rest (1 to 8 ids,
    # none for an empty text); then the count, a `Tokens` with no ids.
    whole, rest = divmod(length, 8)
    if whole and not rest:
        whole, rest = whole - 1, 8
    assert [(type(m), len(m.tokens)) for m in replies] == [(TokensPart, 8)] * whole + [
        (Tokens, rest),
        (Tokens, 0),
    ]
    assert [m.count for m in replies if isinstance(m, Tokens)] == [length, length]
