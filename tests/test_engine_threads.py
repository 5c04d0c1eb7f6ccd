"""The engine's two threads, on the real model in a real runner: `step` decodes on a worker
thread while the runner's Trio thread answers `detokenize` (a request that sends `context`).
Both turn tokens into text through llama.cpp, whose ctypes call lets go of the GIL; when they
shared one buffer, a detokenize could write its piece between a step's call and its read, and
the stream got the detokenize's text (issue 27)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.test_runner import counting, generate, load
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Done, Sampling

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_orphan_processes")]

# Greedy: the text is the same every time, alone or beside others (test_runner checks that).
# Raw counting prompts: the model goes on until `num_predict`, so every stream is long.
GREEDY = Sampling(temperature=0, num_predict=24)
PROMPTS = [counting(1), counting(500)]
# Varied text, so that nearly every piece a detokenize writes differs from the stream's.
CONTEXT = " ".join(f"{word}{i} Ünïcödé 東京 <|im_start|>" for i, word in
                   enumerate(["alpha", "beta", "gamma", "delta"] * 60))  # fmt: skip


async def test_detokenize_while_slots_decode_changes_no_text(default_gguf: Path) -> None:
    async with open_runner(load(default_gguf, num_ctx=512, num_parallel=2)) as runner:
        lone = [(await generate(runner, p, sampling=GREEDY))[0] for p in PROMPTS]
        tokens = await runner.tokenize(CONTEXT, add_special=False)
        expected = await runner.detokenize(tokens)
        assert len(tokens) > 1000 and expected == CONTEXT

        results: dict[int, tuple[str, Done]] = {}
        detokenized: list[str] = []

        async def one(i: int, prompt: str) -> None:
            results[i] = await generate(runner, prompt, sampling=GREEDY)

        async def detokenize_meanwhile() -> None:
            while len(results) < len(PROMPTS):
                detokenized.append(await runner.detokenize(tokens))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(detokenize_meanwhile)
            for i, prompt in enumerate(PROMPTS):
                nursery.start_soon(one, i, prompt)

    assert all(len(text) > 20 for text in lone)
    # The streams ran together, and detokenizes ran all along.
    assert all(results[i][1].eval_count == GREEDY.num_predict for i in range(len(PROMPTS)))
    assert len(detokenized) > 10
    # Neither thread's text took anything from the other's.
    assert [results[i][0] for i in range(len(PROMPTS))] == lone
    assert all(text == expected for text in detokenized)
