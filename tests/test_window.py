"""The cut of a prompt to the context window, made on the text: the same tokens as tokenizing the
whole and cutting, for the toy tokenizer below (by property) and for the real model's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_ollama.runner.window import MARGIN, cut, shorten, surely_longer, window

PIECE = 3  # the toy vocabulary's longest token, in bytes


def toy_tokenize(text: str, add_special: bool) -> list[int]:
    """Words, spaces and other characters, each run split into pieces of at most PIECE bytes
    from its start; a token id is its text's hash (BOS is -1)."""
    out = [-1] if add_special else []
    for run in re.findall(r"[a-z]+|\s+|[^a-z\s]+", text):
        data = run.encode()
        out += [hash(data[i : i + PIECE]) for i in range(0, len(data), PIECE)]
    return out


def whole(text: str, prefix: list[int], n_ctx: int, num_keep: int) -> list[int]:
    return cut([*prefix, *toy_tokenize(text, True)], n_ctx, num_keep)


# Runs of at most 12 characters: a cut changes the tokens of its own run and nothing else.
texts = st.lists(
    st.sampled_from(["a", "bb", "cde", " ", "  ", "\n", "é", ".", "!?", "fghijklmnopq"]),
    max_size=3000,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    text=texts,
    prefix=st.lists(st.integers(0, 99), max_size=8),
    n_ctx=st.integers(2, 60),
    num_keep=st.integers(-1, 70),
)
def test_window_is_the_whole_tokenization_cut(
    text: str, prefix: list[int], n_ctx: int, num_keep: int
) -> None:
    got = window(toy_tokenize, text, prefix=prefix, n_ctx=n_ctx, num_keep=num_keep,
                 max_token_bytes=PIECE)  # fmt: skip
    assert got == whole(text, prefix, n_ctx, num_keep)
    # ... and so is the window of the text without its middle, which is what travels.
    short = shorten(text, n_ctx=n_ctx, num_keep=num_keep, max_token_bytes=PIECE)
    assert len(short) <= max(len(text), 0)
    again = window(toy_tokenize, short, prefix=prefix, n_ctx=n_ctx, num_keep=num_keep,
                   max_token_bytes=PIECE)  # fmt: skip
    assert again == got


def test_a_long_text_is_tokenized_only_at_its_ends() -> None:
    seen: list[int] = []

    def counting(text: str, add_special: bool) -> list[int]:
        seen.append(len(text))
        return toy_tokenize(text, add_special)

    text = "lorem ipsum dolor sit amet " * 400_000  # 10.8 MB
    got = window(counting, text, n_ctx=4096, num_keep=4, max_token_bytes=PIECE)
    assert got is not None and len(got) == 4096
    assert sum(seen) <= (4096 + 2 * MARGIN) * PIECE, seen
    # Too long and not to be cut: known without tokenizing at all.
    seen.clear()
    assert window(counting, text, n_ctx=4096, num_keep=4, max_token_bytes=PIECE,
                  truncate=False) is None  # fmt: skip
    assert seen == []


def test_without_a_bound_everything_is_tokenized() -> None:
    assert not surely_longer(10**9, 1, 0)
    text = "abc " * 1000
    assert shorten(text, n_ctx=4, num_keep=0, max_token_bytes=0) is text
    assert window(toy_tokenize, text, n_ctx=4, num_keep=0, max_token_bytes=0) == whole(
        text, [], 4, 0
    )


@pytest.mark.slow
def test_the_real_tokenizer_cut_on_the_text_matches_the_whole(default_gguf: Path) -> None:
    from trio_ollama.runner.engine import LlamaEngine
    from trio_ollama.runner.protocol import Load

    engine = LlamaEngine()
    try:
        ready = engine.load_sync(Load(model_path=str(default_gguf), num_ctx=512, num_parallel=1))
        bound = ready.max_token_bytes
        assert 8 <= bound <= 256, bound
        words = ["the", "sky", "is", "blue", "ünïcödé", "12345", "\n\n", "   ", "<|im_end|>",
                 "café", "naïve", "—", "🙂", "x" * 40, ",", "!"]  # fmt: skip
        text = " ".join(words[(i * 7919) % len(words)] for i in range(200_000))
        for num_keep in (0, 4, 100):
            full = cut(engine.tokenize(text), 512, num_keep)
            got = window(engine.tokenize, text, n_ctx=512, num_keep=num_keep,
                         max_token_bytes=bound)  # fmt: skip
            assert got == full
            short = shorten(text, n_ctx=512, num_keep=num_keep, max_token_bytes=bound)
            assert len(short) < len(text) // 10
            assert cut(engine.tokenize(short), 512, num_keep) == full
    finally:
        engine.close()
