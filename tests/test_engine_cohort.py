"""Prompts that reach an idle runner together are read together before any of them streams
(runner/engine.py, COHORT_TOKENS): the real model in a real llama.cpp context, stepped by hand so
that what each step sends can be seen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_ollama.runner import engine as engine_module
from trio_ollama.runner.engine import LlamaEngine
from trio_ollama.runner.protocol import Completion, Done, Load, Piece, Reply, Sampling

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(default_gguf: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine()
    engine.load_sync(Load(model_path=str(default_gguf), num_ctx=1024, num_parallel=3))
    try:
        yield engine
    finally:
        engine.close()


def counting(start: int, count: int) -> str:
    return "Count on: " + ", ".join(str(k) for k in range(start, start + count))


def request(rid: int, prompt: str, predict: int = 12) -> Completion:
    return Completion(id=rid, prompt=prompt, sampling=Sampling(temperature=0, num_predict=predict))


def step(engine: LlamaEngine) -> list[Reply]:
    out = engine.step_sync()
    assert all(isinstance(m, Reply) for m in out)
    return [m for m in out if isinstance(m, Reply)]


def run(engine: LlamaEngine) -> list[list[Reply]]:
    """Step until the engine is idle: what each step sent."""
    steps: list[list[Reply]] = []
    while engine.has_work:
        steps.append(step(engine))
        assert len(steps) < 500
    return steps


def fresh(engine: LlamaEngine) -> None:
    """Empty every slot's cache, so that the next run reads its prompts whole."""
    mem = engine.L.llama_get_memory(engine.ctx)
    for slot in engine.slots:
        engine.L.llama_memory_seq_rm(mem, slot.seq, 0, -1)
        slot.tokens.clear()


def first_piece(steps: list[list[Reply]], rid: int) -> int:
    return next(k for k, out in enumerate(steps) if any(m.id == rid for m in out))


def texts(steps: list[list[Reply]]) -> dict[int, str]:
    got: dict[int, str] = {}
    for out in steps:
        for m in out:
            if isinstance(m, Piece):
                got[m.id] = got.get(m.id, "") + m.text
    return got


def alone(engine: LlamaEngine, rid: int, prompt: str, predict: int = 12) -> str:
    fresh(engine)
    engine.submit(request(rid, prompt, predict))
    return texts(run(engine))[rid]


def test_a_burst_is_read_whole_before_any_of_it_streams(engine: LlamaEngine) -> None:
    prompts = {1: counting(1, 3), 2: counting(100, 12), 3: counting(500, 35)}
    lone = {rid: alone(engine, rid, prompt) for rid, prompt in prompts.items()}
    fresh(engine)
    for rid, prompt in prompts.items():
        engine.submit(request(rid, prompt))
    steps = run(engine)
    # 248 prompt tokens take two steps of PROMPT_CHUNK: the short prompt was read in the first,
    # its first token waited for the others, and all three start in the second.
    firsts = {rid: first_piece(steps, rid) for rid in prompts}
    assert firsts == {1: 1, 2: 1, 3: 1}
    # From there on each stream gets a token every step: no step reads a prompt any more.
    start = firsts[1]
    for out in steps[start + 1 : start + 8]:
        assert {m.id for m in out if isinstance(m, Piece)} == {1, 2, 3}
    # Held back, not changed: the same greedy text as each alone.
    assert texts(steps) == lone
    # The wait is reported as prompt time (it was spent reading the burst's prompts), not as
    # generation time: the short prompt's prompt_eval_duration is the long one's.
    done = {m.id: m for out in steps for m in out if isinstance(m, Done)}
    assert done[1].prompt_eval_duration > 0.9 * done[3].prompt_eval_duration


def test_a_prompt_arriving_beside_a_stream_does_not_stop_it(engine: LlamaEngine) -> None:
    fresh(engine)
    engine.submit(request(1, counting(1, 3), predict=40))
    steps = [step(engine)]
    assert any(isinstance(m, Piece) and m.id == 1 for m in steps[0])
    engine.submit(request(2, counting(500, 35)))
    steps += run(engine)
    # While the new prompt is read (DECODING_PROMPT_CHUNK a step), the stream goes on.
    second = first_piece(steps, 2)
    assert second >= 3
    for out in steps[1:second]:
        assert any(isinstance(m, Piece) and m.id == 1 for m in out)


def test_a_cohort_takes_prompts_up_to_its_bound(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two prompts of ~100 tokens and a bound of 150: the second is not in the cohort, so the
    # first streams as soon as it is read instead of waiting for it.
    monkeypatch.setattr(engine, "cohort_limit", 150)
    fresh(engine)
    engine.submit(request(1, counting(1, 30)))
    engine.submit(request(2, counting(300, 30)))
    steps = run(engine)
    assert first_piece(steps, 1) < first_piece(steps, 2)


def test_a_request_arriving_later_is_not_waited_for(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "COHORT_WINDOW", -1.0)  # no second arrival is within it
    fresh(engine)
    engine.submit(request(1, counting(1, 3)))
    engine.submit(request(2, counting(500, 35)))
    steps = run(engine)
    assert first_piece(steps, 1) == 0
    assert first_piece(steps, 2) >= 2


def test_a_later_request_streaming_lets_the_cohort_go(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once a request outside the cohort streams, the cohort's prompts get only the budget
    # beside decoding streams: holding its members any longer would make them wait for it.
    fresh(engine)
    engine.submit(request(1, counting(500, 70)))
    engine.submit(request(2, counting(1, 3)))
    steps = [step(engine)]
    assert not any(m.id == 2 for m in steps[0]), "request 2 waits for request 1's prompt"
    monkeypatch.setattr(engine_module, "COHORT_WINDOW", -1.0)
    engine.submit(request(3, counting(9, 3)))
    steps += run(engine)
    assert first_piece(steps, 2) == first_piece(steps, 3) == 1
    assert first_piece(steps, 1) > 1


def test_a_member_that_leaves_lets_the_others_go(engine: LlamaEngine) -> None:
    fresh(engine)
    engine.submit(request(1, counting(1, 3)))
    engine.submit(request(2, counting(500, 35)))
    steps = [step(engine)]
    assert not any(m.id == 1 for m in steps[0]), "request 1 waits for request 2's prompt"
    engine.cancel(2)
    steps += run(engine)
    assert first_piece(steps, 1) == 1
    assert not any(m.id == 2 for out in steps for m in out)


def test_a_member_done_at_its_first_token_sends_it_then_done(engine: LlamaEngine) -> None:
    fresh(engine)
    engine.submit(request(1, counting(1, 3), predict=1))
    engine.submit(request(2, counting(500, 35)))
    steps = run(engine)
    ones = [m for out in steps for m in out if m.id == 1]
    assert [type(m) for m in ones] == [Piece, Done]
    assert ones[1].eval_count == 1  # type: ignore[attr-defined]
    assert set(texts(steps)) == {1, 2}
