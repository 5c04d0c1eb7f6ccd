"""How the engine lays out a step for llama.cpp's per-sequence KV caches: llama.cpp batches
together only sequences whose ids run consecutively, in ascending order, one token each
(`split_equal(sequential=true)`); every break costs another pass over the weights (measured:
two sequences 18.7 ms a step together, 22.1 ms out of order, 21.6 ms with a gap)."""

from __future__ import annotations

from trio_ollama.runner.engine import RUN_COST_TOKENS, batch_layout, choose_slot, runs


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
