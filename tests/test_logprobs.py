"""Logprobs on the real model, through the real runner subprocess: the values are a log-softmax
computed here, independently, from the same model's logits; the greedy token is always the top
alternative, penalties or not; and they cost nothing when not asked for."""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Completion, Done, Load, Piece, Sampling

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_orphan_processes")]

PROMPT = "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n"


async def logprobs_of(gguf: Path, **fields: Any) -> tuple[str, list[dict[str, Any]], Done]:
    text = ""
    entries: list[dict[str, Any]] = []
    async with open_runner(Load(model_path=str(gguf), num_ctx=512)) as runner:
        async with runner.completion(Completion(id=0, prompt=PROMPT, **fields)) as stream:
            async for event in stream:
                if isinstance(event, Piece):
                    text += event.text
                    entries += event.logprobs
        assert stream.done is not None
        return text, entries, stream.done


def reference_logprobs(gguf: Path, n: int) -> list[tuple[bytes, np.ndarray]]:
    """Greedy decoding straight on llama.cpp (one sequence, the prompt in one batch), and the
    log-softmax of each position's raw logits in float64: what the runner's figures must equal
    without penalties."""
    import llama_cpp as L

    L.llama_backend_init()  # whatever ran before in this process (a worker of its own, or not)
    mparams = L.llama_model_default_params()
    mparams.use_extra_bufts = False  # the runner's setting: no AMX repacking (SIGILL here)
    model = L.llama_model_load_from_file(str(gguf).encode(), mparams)
    assert model, f"llama.cpp could not load {gguf}"
    cparams = L.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = 512
    # The runner's settings, so that both compute the same logits the same way.
    cparams.kv_unified = False
    cparams.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = L.llama_init_from_model(model, cparams)
    assert ctx, "llama.cpp could not make a context"
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    data = PROMPT.encode()
    buf = (L.llama_token * 512)()
    count = L.llama_tokenize(vocab, data, len(data), buf, 512, True, True)
    tokens = list(buf[:count])
    batch = L.llama_batch_init(512, 0, 1)
    piece = ctypes.create_string_buffer(64)
    out: list[tuple[bytes, np.ndarray]] = []
    try:
        pos = 0
        for _ in range(n):
            for i, token in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos + i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == len(tokens) - 1
            batch.n_tokens = len(tokens)
            assert L.llama_decode(ctx, batch) == 0
            pos += len(tokens)
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), (n_vocab,))
            logits = logits.astype(np.float64)
            top = logits.max()
            logprobs = logits - (top + math.log(np.exp(logits - top).sum()))
            token = int(np.argmax(logits))
            size = L.llama_token_to_piece(vocab, token, piece, 64, 0, False)
            out.append((piece.raw[:size], logprobs))
            tokens = [token]
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(model)
    return out


async def test_values_equal_an_independent_log_softmax(default_gguf: Path) -> None:
    sampling = Sampling(temperature=0, num_predict=10, repeat_penalty=1.0)
    text, entries, done = await logprobs_of(
        default_gguf, sampling=sampling, logprobs=True, top_logprobs=5
    )
    assert done.eval_count == len(entries) == 10  # Ollama's basic_test: one entry a token
    reference = reference_logprobs(default_gguf, 10)
    for entry, (token, logprobs) in zip(entries, reference, strict=True):
        assert entry["token"] == token.decode("utf-8", errors="replace")
        assert entry["bytes"] == list(entry["token"].encode())
        best = np.argsort(-logprobs)[:5]
        assert entry["logprob"] == pytest.approx(logprobs[best[0]], abs=1e-5)
        tops = entry["top_logprobs"]
        assert [t["logprob"] for t in tops] == pytest.approx(list(logprobs[best]), abs=1e-5)
        assert tops[0]["token"] == entry["token"]  # greedy: the pick is the likeliest
        assert all(t["logprob"] <= 0 for t in tops)
    assert "".join(e["token"] for e in entries) == text


async def test_greedy_token_is_the_top_alternative_after_penalties(default_gguf: Path) -> None:
    """With strong penalties the raw logits' favourite is often not the pick; the figures are
    the ones the sampler chose from, so the pick still leads its alternatives."""
    sampling = Sampling(temperature=0, num_predict=24, repeat_penalty=1.8, repeat_last_n=64,
                        presence_penalty=0.5)  # fmt: skip
    _, entries, _ = await logprobs_of(
        default_gguf, sampling=sampling, logprobs=True, top_logprobs=20
    )
    assert len(entries) == 24
    for entry in entries:
        tops = entry["top_logprobs"]
        assert len(tops) == 20
        assert tops[0]["token"] == entry["token"]
        assert tops[0]["logprob"] == entry["logprob"] == max(t["logprob"] for t in tops)
        assert sum(math.exp(t["logprob"]) for t in tops) <= 1 + 1e-6


async def test_none_unless_asked(default_gguf: Path) -> None:
    sampling = Sampling(temperature=0, num_predict=10)
    _, entries, _ = await logprobs_of(default_gguf, sampling=sampling)
    assert entries == []
    _, entries, _ = await logprobs_of(default_gguf, sampling=sampling, logprobs=True)
    assert len(entries) == 10 and all("top_logprobs" not in e for e in entries)


async def test_a_stop_strings_tokens_get_no_logprobs(default_gguf: Path) -> None:
    """Cut at a stop string, the answer carries logprobs for the tokens shown and none for the
    stop string's, as Ollama trims its pending logprobs after the cut."""
    sampling = Sampling(temperature=0, num_predict=12, repeat_penalty=1.0)
    text, entries, _ = await logprobs_of(default_gguf, sampling=sampling, logprobs=True)
    shown = "".join(e["token"] for e in entries)
    assert shown == text and len(entries) == 12
    # A stop string that is the 6th token's text, where it first occurs.
    starts = [len("".join(x["token"] for x in entries[:i])) for i in range(len(entries))]
    k = next(
        i for i, e in enumerate(entries)
        if i >= 5 and e["token"].strip() and shown.find(e["token"]) == starts[i]
    )  # fmt: skip
    stop = entries[k]["token"]
    cut = Sampling(temperature=0, num_predict=12, repeat_penalty=1.0, stop=[stop])
    cut_text, cut_entries, done = await logprobs_of(default_gguf, sampling=cut, logprobs=True)
    assert cut_text == text[: text.index(stop)]
    assert [e["token"] for e in cut_entries] == [e["token"] for e in entries[:k]]
    assert done.done_reason == "stop"


def test_tokens_covering_counts_the_tokens_a_cut_text_shows() -> None:
    from trio_ollama.runner.engine import tokens_covering

    assert tokens_covering([b"Hi", b" there"], 0) == 0
    assert tokens_covering([b"Hi", b" there"], 2) == 1
    assert tokens_covering([b"Hi", b" there"], 3) == 2
    # A character split over two tokens shows only with the second.
    assert tokens_covering([b"a", "é".encode()[:1], "é".encode()[1:]], 2) == 3
