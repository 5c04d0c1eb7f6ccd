"""The runner on the real SmolLM2 model, through the real subprocess and socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.procs import alive, poll_until
from trio_ollama.runner.client import LoadError, RunnerClient, RunnerError, RunnerGoneError
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Completion, Done, Load, Piece, Sampling

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "You are a helpful assistant."


def chat(*turns: str, system: str = SYSTEM) -> str:
    """ChatML, the SmolLM2 template: alternate user/assistant turns, then the assistant's."""
    text = f"<|im_start|>system\n{system}<|im_end|>\n"
    for i, turn in enumerate(turns):
        role = "user" if i % 2 == 0 else "assistant"
        text += f"<|im_start|>{role}\n{turn}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


GREEDY = Sampling(temperature=0, num_predict=40)


def counting(start: int = 1, n: int = 20) -> str:
    """A raw prompt the model continues for as long as it is allowed to (it never says EOS)."""
    return ", ".join(str(i) for i in range(start, start + n)) + ","


# The real model through real runner processes.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_orphan_processes")]


def load(gguf: Path, **kwargs: object) -> Load:
    return Load(model_path=str(gguf), **kwargs)  # type: ignore[arg-type]


async def generate(runner: RunnerClient, prompt: str, **kwargs: object) -> tuple[str, Done]:
    text = ""
    async with runner.completion(Completion(id=0, prompt=prompt, **kwargs)) as stream:  # type: ignore[arg-type]
        async for event in stream:
            if isinstance(event, Piece):
                text += event.text
    assert stream.done is not None
    return text, stream.done


async def test_load_reports_real_allocations(default_gguf: Path) -> None:
    async with open_runner(load(default_gguf, num_ctx=1024, num_parallel=2)) as runner:
        ready = runner.ready
        assert ready is not None
        assert ready.num_ctx == 1024 and ready.num_parallel == 2
        assert ready.n_ctx_train == 8192 and ready.n_embd == 576
        # Weights as llama.cpp mapped them (the GGUF's tensor data, ~96.6 MB).
        assert 90_000_000 < ready.weights_bytes < 100_000_000
        # KV: 30 layers x 1024 x 2 slots x 192 (3 kv heads x 64) x 2 (K, V) x 2 bytes (f16).
        assert ready.kv_bytes == 30 * 1024 * 2 * 192 * 2 * 2
        assert ready.compute_bytes > 0
        assert ready.pid == runner.pid and alive(ready.pid)
    assert not alive(ready.pid)


async def test_greedy_output_alone_equals_output_batched_with_three_others(
    default_gguf: Path,
) -> None:
    prompt = chat("Name three colours of the rainbow.")
    async with open_runner(load(default_gguf, num_ctx=512, num_parallel=4)) as runner:
        alone, alone_done = await generate(runner, prompt, sampling=GREEDY)
    others = [chat("Count to five."), chat("What is 2+2?"), chat("Say hello in French.")]
    results: dict[int, tuple[str, Done]] = {}
    async with open_runner(load(default_gguf, num_ctx=512, num_parallel=4)) as runner:

        async def one(i: int, p: str) -> None:
            results[i] = await generate(runner, p, sampling=GREEDY)

        async with trio.open_nursery() as nursery:
            for i, p in enumerate([prompt, *others]):
                nursery.start_soon(one, i, p)
    assert len(alone) > 20
    assert results[0][0] == alone
    assert results[0][1].eval_count == alone_done.eval_count
    # The others really ran at the same time: their generation windows overlap.
    assert all(results[i][1].eval_count > 5 for i in range(4))


async def test_seed_makes_sampling_reproducible(default_gguf: Path) -> None:
    prompt = chat("Write a sentence about the sea.")
    sampling = Sampling(temperature=1.0, top_k=100, top_p=1.0, seed=7, num_predict=30)
    async with open_runner(load(default_gguf, num_ctx=512)) as runner:
        first, _ = await generate(runner, prompt, sampling=sampling)
        second, _ = await generate(runner, prompt, sampling=sampling)
        other, _ = await generate(runner, prompt, sampling=Sampling(**{**_d(sampling), "seed": 8}))
    assert first == second
    assert other != first


def _d(s: Sampling) -> dict[str, object]:
    import attrs

    return attrs.asdict(s)


async def test_stop_string_spanning_tokens_is_never_emitted(default_gguf: Path) -> None:
    prompt = chat("List the numbers from 1 to 30, separated by commas.")
    async with open_runner(load(default_gguf, num_ctx=512)) as runner:
        full, _ = await generate(runner, prompt, sampling=Sampling(temperature=0, num_predict=60))
        stop = full[10:16]
        assert len(await runner.tokenize(stop, add_special=False)) >= 2, stop
        cut, done = await generate(
            runner, prompt, sampling=Sampling(temperature=0, num_predict=60, stop=[stop])
        )
    assert cut == full[: full.index(stop)]
    assert done.done_reason == "stop"


async def test_preserved_control_tokens_are_written_as_text(default_gguf: Path) -> None:
    """Ollama's PreservedTokens: a control token the output parser reads (here SmolLM2's own
    `<|im_start|>`, which it writes after a finished turn) comes out as its text; others, and
    the same token unasked, are dropped as llama.cpp drops control tokens. A string that is no
    one token of the vocabulary preserves nothing."""
    prompt = "<|im_start|>user\nhi<|im_end|>\n"
    sampling = Sampling(temperature=0, num_predict=3)
    async with open_runner(load(default_gguf, num_ctx=512)) as runner:
        assert await runner.tokenize("<|im_start|>", add_special=False) == [1]
        plain, _ = await generate(runner, prompt, sampling=sampling)
        kept, _ = await generate(runner, prompt, sampling=sampling, preserved=["<|im_start|>"])
        multi, _ = await generate(runner, prompt, sampling=sampling, preserved=["<think>"])
    assert kept.startswith("<|im_start|>") and kept.removeprefix("<|im_start|>") == plain, kept
    assert "<|" not in plain and plain, plain
    assert multi == plain


async def test_num_predict_limits_tokens(default_gguf: Path) -> None:
    async with open_runner(load(default_gguf, num_ctx=512)) as runner:
        _, done = await generate(
            runner, counting(), sampling=Sampling(temperature=0, num_predict=5)
        )
    assert (done.eval_count, done.done_reason) == (5, "length")


async def test_json_schema_and_json_format_constrain_output(default_gguf: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    async with open_runner(load(default_gguf, num_ctx=512)) as runner:
        text, done = await generate(
            runner,
            chat("Give the largest city of Japan and its population as JSON."),
            sampling=Sampling(temperature=0, num_predict=80),
            format=json.dumps(schema),
        )
        value = json.loads(text)
        assert set(value) == {"city", "population"}
        assert isinstance(value["city"], str) and isinstance(value["population"], int)
        assert done.done_reason == "stop"
        text, done = await generate(
            runner,
            chat("What is the capital of France? Answer in JSON."),
            sampling=Sampling(temperature=0, num_predict=200),
            format="json",
        )
        assert done.done_reason == "stop"
        assert isinstance(json.loads(text), dict)
        with pytest.raises(RunnerError) as info:
            await generate(runner, chat("x"), format="{not json")
        assert info.value.invalid and "invalid JSON schema" in str(info.value)


async def test_prompt_longer_than_context(default_gguf: Path) -> None:
    prompt = chat("Repeat after me: " + "the quick brown fox jumps over the lazy dog " * 20)
    async with open_runner(load(default_gguf, num_ctx=64)) as runner:
        assert len(await runner.tokenize(prompt)) > 150
        _, done = await generate(runner, prompt, sampling=Sampling(num_predict=4, seed=1))
        assert done.prompt_eval_count == 64
        with pytest.raises(RunnerError) as info:
            await generate(runner, prompt, truncate=False)
        assert info.value.invalid
        assert str(info.value) == "the input length exceeds the context length"
        # The runner is still fine after refusing a request.
        three = Sampling(temperature=0, num_predict=3)
        _, done = await generate(runner, counting(), sampling=three)
        assert done.eval_count == 3


async def test_context_shift(default_gguf: Path) -> None:
    prompt = counting(n=8)
    async with open_runner(load(default_gguf, num_ctx=64)) as runner:
        n_prompt = len(await runner.tokenize(prompt))
        # Keep the whole prompt through shifts, so the model still knows what it is doing.
        sampling = Sampling(temperature=0, num_predict=150, num_keep=n_prompt)
        _, shifted = await generate(runner, prompt, sampling=sampling)
        _, unshifted = await generate(runner, prompt, sampling=sampling, shift=False)
        _, filled = await generate(
            runner, prompt, sampling=Sampling(**{**_d(sampling), "num_predict": -2})
        )
    # 150 tokens do not fit in 64 alongside the prompt: the context was shifted to make room.
    assert (shifted.eval_count, shifted.done_reason) == (150, "length")
    assert unshifted.done_reason == "length"
    assert unshifted.eval_count == filled.eval_count == 64 - n_prompt + 1
    assert filled.done_reason == "length"


async def test_cancelling_one_of_four_frees_its_slot(default_gguf: Path) -> None:
    long = Sampling(temperature=0, num_predict=120)
    finished: dict[int, float] = {}
    async with open_runner(load(default_gguf, num_ctx=1024, num_parallel=4)) as runner:
        victim = trio.CancelScope()

        async def streamer(i: int, scope: trio.CancelScope | None = None) -> None:
            with scope or trio.CancelScope():
                await generate(runner, counting(100 * i), sampling=long)
                finished[i] = trio.current_time()

        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(streamer, i)
            nursery.start_soon(streamer, 3, victim)
            await trio.sleep(1.0)
            victim.cancel()
            five = Sampling(temperature=0, num_predict=5)
            _, done = await generate(runner, counting(), sampling=five)
            fifth_done = trio.current_time()
            assert done.eval_count == 5
            assert finished == {}, "the fifth request ran while the three others still streamed"
    assert set(finished) == {0, 1, 2}
    assert all(t > fifth_done for t in finished.values())


LONG_HISTORY = [
    f"Here is fact number {i}: the river {name} flows through the valley of {name}ia."
    for i, name in enumerate(
        ["Amber", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Grove", "Heath", "Iris", "Jade"] * 5
    )
]


async def test_cancel_during_a_long_prompt_returns_the_slot_quickly(default_gguf: Path) -> None:
    prompt = chat(" ".join(LONG_HISTORY) + " Summarise.")
    async with open_runner(load(default_gguf, num_ctx=2048)) as runner:
        n_prompt = len(await runner.tokenize(prompt))
        assert n_prompt > 1000
        _, full = await generate(runner, prompt, sampling=Sampling(num_predict=1))
        prompt_seconds = full.prompt_eval_duration / 1e9
        other = prompt.replace("Here is", "Here was")  # no shared prefix to reuse
        with trio.move_on_after(prompt_seconds / 4):
            await generate(runner, other, sampling=Sampling(num_predict=1))
        started = trio.current_time()
        one = Sampling(temperature=0, num_predict=1)
        _, done = await generate(runner, counting(), sampling=one)
        waited = trio.current_time() - started
    assert done.eval_count == 1
    assert waited < prompt_seconds / 3, (waited, prompt_seconds)


async def test_second_chat_turn_reuses_the_cached_history(default_gguf: Path) -> None:
    history = [item for fact in LONG_HISTORY[:12] for item in (fact, "Noted.")]
    first = chat(*history, "What flows through Cedaria?")
    async with open_runner(load(default_gguf, num_ctx=2048)) as runner:
        first_tokens = await runner.tokenize(first)
        assert len(first_tokens) > 250
        reply, one = await generate(runner, first, sampling=Sampling(temperature=0, num_predict=1))
        second = chat(*history, "What flows through Cedaria?", reply, "And through Jadeia?")
        second_tokens = await runner.tokenize(second)
        _, done = await generate(runner, second, sampling=Sampling(temperature=0, num_predict=1))
    # The whole prompt is counted, as Ollama does; the cache shows in what was not evaluated
    # again (counted by the runner, not timed: a busy machine's clock says little), and in
    # the time the rest took.
    assert done.prompt_eval_count == len(second_tokens)
    assert one.prompt_cached == 0
    assert len(first_tokens) - 1 <= done.prompt_cached < len(second_tokens), done
    assert done.prompt_eval_duration < one.prompt_eval_duration, (one, done)


async def test_a_start_another_slot_holds_is_copied_not_computed(default_gguf: Path) -> None:
    """A long shared start (a system prompt every request repeats) that a busy slot holds is
    copied into the slot a new request takes: counted as cached, and the answer is the one a
    runner that computed the whole prompt gives."""
    shared = "\n".join(LONG_HISTORY[:30]) + "\n"
    busy = shared + counting()  # goes on counting for as long as it is allowed to
    asked = shared + "Question: what flows through the valley of Cedaria?\nAnswer:"
    ten = Sampling(temperature=0, num_predict=10)
    order: list[str] = []
    async with open_runner(load(default_gguf, num_ctx=2048, num_parallel=2)) as runner:
        start = len(await runner.tokenize(shared))
        assert start > 500

        async def stream_busy(task_status: trio.TaskStatus[None]) -> None:
            long = Sampling(temperature=0, num_predict=150)
            async with runner.completion(Completion(id=0, prompt=busy, sampling=long)) as stream:
                started = False
                async for event in stream:
                    if isinstance(event, Piece) and not started:
                        task_status.started()
                        started = True
            order.append("busy")

        async with trio.open_nursery() as nursery:
            await nursery.start(stream_busy)  # its prompt is in its slot's cache
            copied, done = await generate(runner, asked, sampling=ten)
            order.append("asked")
    async with open_runner(load(default_gguf, num_ctx=2048, num_parallel=2)) as fresh:
        computed, alone = await generate(fresh, asked, sampling=ten)
    assert order == ["asked", "busy"], "the first slot was busy throughout"
    assert alone.prompt_cached == 0
    assert start - 1 <= done.prompt_cached < done.prompt_eval_count, done
    assert copied == computed


async def test_runner_killed_mid_stream_fails_every_request(default_gguf: Path) -> None:
    errors: list[Exception] = []
    async with open_runner(load(default_gguf, num_ctx=512, num_parallel=2)) as runner:

        async def stream(i: int) -> None:
            try:
                await generate(runner, counting(100 * i), sampling=Sampling(num_predict=500))
            except RunnerGoneError as exc:
                errors.append(exc)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream, 0)
                nursery.start_soon(stream, 1)
                await trio.sleep(0.5)
                assert runner.pid is not None
                os.kill(runner.pid, signal.SIGKILL)
            with pytest.raises(RunnerGoneError):
                await runner.tokenize("after death")
    assert len(errors) == 2
    assert runner.dead


PARENT = r"""
import os, sys, trio
sys.path.insert(0, sys.argv[2])
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Load
async def main():
    async with open_runner(Load(model_path=sys.argv[1], num_ctx=256)) as runner:
        print(runner.pid, flush=True)
        await trio.sleep_forever()
trio.run(main)
"""


def test_sigkilled_parent_leaves_no_runner(default_gguf: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(default_gguf), str(ROOT)], stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    runner_pid = int(parent.stdout.readline())
    assert alive(runner_pid)
    parent.kill()
    parent.wait()
    poll_until(
        lambda: not alive(runner_pid), 1.0, "the runner outlived its parent by a second", every=0.01
    )


async def test_embedding_and_tokens(default_gguf: Path) -> None:
    async with open_runner(load(default_gguf, num_ctx=512, num_parallel=2)) as runner:
        a = await runner.embed("The cat sat on the mat.")
        b = await runner.embed("The cat sat on the mat.")
        c = await runner.embed("Quarterly revenue rose by four percent.")
        tokens = await runner.tokenize("hello world", add_special=False)
        text = await runner.detokenize(tokens)
    assert len(a.embedding) == 576 and a.prompt_eval_count > 3
    assert a.embedding == b.embedding
    assert a.embedding != c.embedding
    assert text == "hello world"


async def test_fake_engine_load_failure_and_crash(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such weights"):
        async with open_runner(
            Load(model_path="x"), engine="fake", fake_config={"fail_load": "no such weights"}
        ):
            pass  # pragma: no cover
    config = {"crash_after_tokens": 5, "tokens_per_second": 100}
    async with open_runner(Load(model_path="x"), engine="fake", fake_config=config) as runner:
        with pytest.raises(RunnerGoneError):
            await generate(runner, "hello", sampling=Sampling(num_predict=50))


async def test_load_timeout_kills_the_runner() -> None:
    started = trio.current_time()
    with pytest.raises(LoadError, match="timed out"):
        async with open_runner(
            Load(model_path="x"),
            engine="fake",
            fake_config={"load_seconds": 30},
            load_timeout=0.5,
        ):
            pass  # pragma: no cover
    assert trio.current_time() - started < 10


async def test_real_engine_reports_a_broken_model_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    with pytest.raises(LoadError, match="failed to load model"):
        async with open_runner(load(broken)):
            pass  # pragma: no cover


async def test_a_hung_engine_can_still_be_abandoned_and_killed() -> None:
    config = {"hang_after_tokens": 3, "tokens_per_second": 200}
    async with open_runner(Load(model_path="x"), engine="fake", fake_config=config) as runner:
        pieces = 0
        with trio.move_on_after(1.0) as scope:
            async with runner.completion(Completion(id=0, prompt="x")) as stream:
                async for event in stream:
                    pieces += isinstance(event, Piece)
        assert scope.cancelled_caught and pieces == 3
        pid = runner.pid
    assert pid is not None and not alive(pid)
