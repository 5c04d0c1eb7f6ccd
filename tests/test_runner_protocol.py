"""The sans-IO protocol and the text stream, without any process or model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_ollama.runner.protocol import (
    Cancel,
    Completion,
    Done,
    Embedding,
    FrameDecoder,
    Load,
    Piece,
    ProtocolError,
    Ready,
    RequestFailed,
    Sampling,
    encode,
)
from trio_ollama.runner.text import TextStream, held_suffix

MESSAGES = [
    Load(model_path="/m.gguf", num_ctx=128, num_parallel=4, adapters=["/a"]),
    Ready(
        weights_bytes=1,
        kv_bytes=2,
        compute_bytes=3,
        num_ctx=128,
        num_parallel=4,
        n_ctx_train=8192,
        n_vocab=10,
        n_embd=8,
    ),
    Completion(id=7, prompt="héllo", tokens=[1, 2], sampling=Sampling(stop=["\n"]), format="json"),
    Piece(7, "wörld 🌍"),
    Done(id=7, done_reason="stop", eval_count=3),
    Embedding(id=8, embedding=[0.5, -1.25], prompt_eval_count=2),
    RequestFailed(id=9, message="bad", invalid=True),
    Cancel(7),
]


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=200))
def test_frames_survive_any_split(cuts: list[int]) -> None:
    data = b"".join(encode(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out = []
    pos = 0
    for cut in cuts:
        decoder.feed(data[pos : pos + cut])
        pos += cut
        out.extend(decoder)
    decoder.feed(data[pos:])
    out.extend(decoder)
    assert out == MESSAGES
    assert decoder.pending_bytes == 0


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_frame(b"abc"), "not JSON"),
        (_frame(b"[]"), "not a JSON object"),
        (_frame(b'{"type":"zzz"}'), "unknown message type"),
        (_frame(b'{"type":"piece","x":1}'), "bad piece message"),
        (b"\xff\xff\xff\xff", "exceeds"),
    ],
)
def test_bad_frames(frame: bytes, message: str) -> None:
    decoder = FrameDecoder()
    decoder.feed(frame)
    with pytest.raises(ProtocolError, match=message):
        list(decoder)


def test_stop_string_split_across_pieces_is_never_emitted() -> None:
    stream = TextStream(["<|end|>", "STOP"])
    emitted = []
    for piece in [b"Hello <|", b"en", b"d", b"|> never"]:
        text, stopped = stream.push(piece)
        emitted.append(text)
        if stopped:
            break
    assert "".join(emitted) == "Hello "
    assert stopped


def test_held_text_is_released_when_it_is_not_a_stop() -> None:
    stream = TextStream(["STOP"])
    assert stream.push(b"ab ST") == ("ab ", False)
    assert stream.push(b"ay") == ("STay", False)
    assert stream.push(b" S") == (" ", False)
    assert stream.flush() == "S"


def test_multibyte_characters_are_held_until_complete() -> None:
    stream = TextStream([])
    snowman = "☃".encode()
    assert stream.push(snowman[:1]) == ("", False)
    assert stream.push(snowman[1:2]) == ("", False)
    assert stream.push(snowman[2:] + b"!") == ("☃!", False)
    assert stream.push(b"\xe2") == ("", False)
    assert stream.flush() == "\ufffd"


def test_held_suffix() -> None:
    assert held_suffix("abc<|e", ["<|end|>"]) == 3
    assert held_suffix("abc", ["<|end|>"]) == 0
    assert held_suffix("xS", ["STOP", "SO"]) == 1


@given(
    text=st.text(alphabet="ab<|>xy", max_size=30),
    stop=st.text(alphabet="ab<|>", min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=1, max_value=4), max_size=30),
)
def test_stream_equals_cut_at_first_stop(text: str, stop: str, cuts: list[int]) -> None:
    stream = TextStream([stop])
    data = text.encode()
    out = []
    pos = 0
    stopped = False
    for cut in [*cuts, len(data)]:
        piece, stopped = stream.push(data[pos : pos + cut])
        out.append(piece)
        pos += cut
        if stopped or pos >= len(data):
            break
    if not stopped:
        out.append(stream.flush())
    index = text.find(stop)
    assert "".join(out) == (text if index < 0 else text[:index])


def test_a_message_too_large_for_a_frame_is_refused_before_sending() -> None:
    from trio_ollama.runner.protocol import MAX_FRAME, FrameTooLarge, Tokenize

    with pytest.raises(FrameTooLarge, match="tokenize message of"):
        encode(Tokenize(id=1, text="x" * (MAX_FRAME + 1)))
    # Raw UTF-8, not \\u escapes: "é" costs 2 bytes in a frame, not 6.
    assert len(encode(Piece(1, "é" * 1000))) < 2100
