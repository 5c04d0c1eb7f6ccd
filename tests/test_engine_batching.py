"""How the engine lays out a step for llama.cpp's per-sequence KV caches: llama.cpp batches
together only sequences whose ids run consecutively, in ascending order, one token each
(`split_equal(sequential=true)`); every break costs another pass over the weights (measured:
two sequences 18.7 ms a step together, 22.1 ms out of order, 21.6 ms with a gap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_ollama.runner.engine import (
    DECODING_PROMPT_CHUNK,
    PROMPT_CHUNK,
    RUN_COST_TOKENS,
    batch_layout,
    choose_slot,
    measuring_knob,
    prompt_admission,
    runs,
)


def test_runs_counts_the_breaks_in_a_set_of_sequence_ids() -> None:
    assert runs(set()) == 0
    assert runs({3}) == 1
    assert runs({0, 1, 2}) == 1
    assert runs({0, 2, 3, 7}) == 3


def test_the_first_token_of_every_part_goes_first_in_sequence_order() -> None:
    # Decodes for sequences 5 and 1, a prompt of 3 tokens for sequence 3, arriving in that order.
    where = batch_layout([(5, 1), (1, 1), (3, 3)])
    assert where == [[2], [0], [1, 3, 4]]
    # The batch reads 1, 3, 5 (one token each: one pass), then the rest of the prompt.
    order = sorted((index, seq) for (seq, _), indices in zip([(5, 1), (1, 1), (3, 3)], where,
                   strict=True) for index in indices)  # fmt: skip
    assert [seq for _, seq in order] == [1, 3, 5, 3, 3]
    assert batch_layout([]) == []


def test_prompts_share_one_chunk_a_step_shortest_first() -> None:
    # Alone or beside decoding sequences: larger steps were slower on the CPU (see PROMPT_CHUNK).
    assert PROMPT_CHUNK == 128
    assert prompt_admission([159], decoding=0, n_batch=512) == [128]
    assert prompt_admission([1000], decoding=0, n_batch=512) == [128]
    assert prompt_admission([1000], decoding=3, n_batch=512) == [DECODING_PROMPT_CHUNK]
    # Equals in arrival order ...
    assert prompt_admission([100, 100, 100], decoding=0, n_batch=512) == [100, 28, 0]
    assert prompt_admission([100, 100], decoding=1, n_batch=512, beside_decoding=128) == [100, 28]
    # ... and a short prompt behind a long one goes first, not after all of it.
    assert prompt_admission([1024, 5], decoding=0, n_batch=512) == [123, 5]
    assert prompt_admission([900, 200, 5], decoding=2, n_batch=512, beside_decoding=128) == [
        0,
        123,
        5,
    ]


def test_beside_decoding_streams_a_step_takes_only_the_budget() -> None:
    # A stream's gap between tokens is its step: with streams decoding, prompts get the smaller
    # budget, shared shortest first; with none decoding, the whole chunk.
    assert prompt_admission([1000], decoding=3, n_batch=512, beside_decoding=16) == [16]
    assert prompt_admission([1000], decoding=0, n_batch=512, beside_decoding=16) == [128]
    assert prompt_admission([40, 5], decoding=2, n_batch=512, beside_decoding=16) == [11, 5]
    assert prompt_admission([40], decoding=510, n_batch=512, beside_decoding=16) == [2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 32), ("16", 16), (" 1 ", 1), ("128", 128), ("0", 32), ("129", 32), ("-4", 32),
     ("x", 32), ("1e3", 32)],
)  # fmt: skip
def test_a_measuring_knob_is_read_from_the_environment(value: str, expected: int) -> None:
    assert measuring_knob({"KNOB": value}, "KNOB", 32, 1, 128) == expected
    assert measuring_knob({}, "KNOB", 32, 1, 128) == 32
    assert measuring_knob({"KNOB": "0"}, "KNOB", 32, 0, 128) == 0


def test_a_step_never_holds_more_than_the_batch() -> None:
    assert prompt_admission([50, 50], decoding=500, n_batch=512) == [12, 0]
    assert prompt_admission([1000], decoding=0, n_batch=64) == [64]
    assert prompt_admission([], decoding=4, n_batch=512) == []


def test_a_new_request_takes_a_slot_beside_the_busy_ones() -> None:
    # Sequences 2 and 3 busy; 0, 1, 4 and 7 free, no shared prompt: 1 or 4 keep one run.
    free = [(0, 0, 0.0), (1, 0, 5.0), (4, 0, 1.0), (7, 0, 0.0)]
    assert free[choose_slot(free, {2, 3})][0] == 4, "beside them; the least recently used"
    # A slot that fills a gap is worth as much as a shared prompt of RUN_COST_TOKENS.
    assert free[choose_slot(free, {0, 2})][0] == 1


def test_a_long_shared_prompt_outweighs_a_gap() -> None:
    free = [(1, 10, 0.0), (6, RUN_COST_TOKENS + 20, 0.0)]
    assert free[choose_slot(free, {2})][0] == 6, "its prompt cache saves more than a pass costs"
    free = [(1, 10, 0.0), (6, RUN_COST_TOKENS, 0.0)]
    assert free[choose_slot(free, {2})][0] == 1


def test_with_nothing_busy_the_longest_prompt_then_the_least_recently_used() -> None:
    free = [(0, 0, 3.0), (1, 0, 1.0), (2, 4, 9.0)]
    assert choose_slot(free, set()) == 2
    assert choose_slot(free[:2], set()) == 1


@pytest.mark.slow
def test_greedy_in_numpy_picks_what_llamas_penalties_and_greedy_chain_picks(
    default_gguf: Path,
) -> None:
    """The real model, a real context: at every step the chain `penalties → greedy` and
    `Greedy` see the same logits and the same history, and must pick the same token."""
    import llama_cpp as L
    import numpy as np

    from trio_ollama.runner.engine import Greedy
    from trio_ollama.runner.protocol import Completion, Sampling

    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.use_extra_bufts = False  # as the engine loads it (AMX here)
    model = L.llama_model_load_from_file(str(default_gguf).encode(), params)
    cparams = L.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_threads, cparams.n_threads_batch = 512, 512, 2, 2
    ctx = L.llama_init_from_model(model, cparams)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    try:
        for penalties in ((1.3, 0.2, 0.1, 8), (1.0, 0.5, 1.5, 16), (1.1, 0.0, 0.0, 64),
                          (1.0, 0.0, 0.0, 64)):  # fmt: skip
            repeat, frequency, presence, last_n = penalties
            chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_penalties(
                n_vocab, last_n, repeat, frequency, presence))  # fmt: skip
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            sampling = Sampling(temperature=0, repeat_penalty=repeat, frequency_penalty=frequency,
                                presence_penalty=presence, repeat_last_n=last_n)  # fmt: skip
            greedy = Greedy.of(Completion(id=0, prompt="", sampling=sampling), 512)
            assert greedy is not None
            L.llama_memory_clear(L.llama_get_memory(ctx), True)
            prompt = b"one, two, three, one, two, three, one, two,"
            buf = (L.llama_token * 64)()
            n = L.llama_tokenize(vocab, prompt, len(prompt), buf, 64, True, False)
            batch = L.llama_batch_get_one(buf, n)
            picked: list[tuple[int, int]] = []
            for _ in range(40):
                assert L.llama_decode(ctx, batch) == 0
                logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), (n_vocab,))
                mine = greedy.pick(logits.copy())
                theirs = L.llama_sampler_sample(chain, ctx, -1)
                picked.append((mine, theirs))
                token = (L.llama_token * 1)(theirs)
                batch = L.llama_batch_get_one(token, 1)
            L.llama_sampler_free(chain)
            assert [m for m, _ in picked] == [t for _, t in picked], penalties
            if penalties != (1.0, 0.0, 0.0, 64):
                assert len({t for _, t in picked}) > 3, "the penalties steered the text"
    finally:
        L.llama_free(ctx)
        L.llama_model_free(model)
