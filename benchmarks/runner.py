"""Runner throughput against a plain in-process llama-cpp-python loop, measured in one run.

    .venv/bin/python -m benchmarks.runner [--tokens 128] [--rounds 3]

Prints decode tokens/s for one stream in a bare low-level loop (greedy, batch of one) and through
the runner (subprocess, socket, protocol, batching loop), and the runner's aggregate tokens/s
with 4 and 8 concurrent requests. Figures are ratios within the run; absolute speeds vary.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from pathlib import Path

import trio

from trio_ollama.cpus import available_cpus
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Completion, Load, Piece, Sampling
from trio_ollama.store.default_model import fetch_default_gguf


def counting(start: int) -> str:
    """A raw prompt SmolLM2 continues without ever emitting end-of-sequence."""
    return ", ".join(str(i) for i in range(start, start + 20)) + ","


PROMPT = counting(1)


_quiet: object = None


def plain_loop(model_path: Path, n_tokens: int) -> float:
    """Decode tokens/s of the tightest loop llama-cpp-python allows: greedy, one sequence."""
    import llama_cpp as L

    global _quiet
    _quiet = L.llama_log_callback(lambda *args: None)  # llama.cpp keeps only the C pointer
    L.llama_log_set(_quiet, ctypes.c_void_p(0))
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.use_extra_bufts = False  # as the runner loads it (see runner/engine.py)
    model = L.llama_model_load_from_file(str(model_path).encode(), mparams)
    vocab = L.llama_model_get_vocab(model)
    params = L.llama_context_default_params()
    params.n_ctx = 2048
    params.n_batch = 512
    params.no_perf = True
    # The runner's own settings, so that the ratio measures the runner, not llama.cpp options.
    params.n_threads = params.n_threads_batch = available_cpus()
    params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = L.llama_init_from_model(model, params)
    data = PROMPT.encode()
    buf = (L.llama_token * 512)()
    n = L.llama_tokenize(vocab, data, len(data), buf, 512, True, True)
    batch = L.llama_batch_init(512, 0, 1)
    for i in range(n):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = buf[i], i, 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = i == n - 1
    batch.n_tokens = n
    L.llama_decode(ctx, batch)
    sampler = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy())
    piece = ctypes.create_string_buffer(256)
    token = L.llama_sampler_sample(sampler, ctx, n - 1)
    started = time.perf_counter()
    for step in range(n_tokens):
        L.llama_token_to_piece(vocab, token, piece, 256, 0, False)
        batch.token[0], batch.pos[0], batch.n_seq_id[0] = token, n + step, 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = True
        batch.n_tokens = 1
        L.llama_decode(ctx, batch)
        token = L.llama_sampler_sample(sampler, ctx, 0)
    elapsed = time.perf_counter() - started
    L.llama_sampler_free(sampler)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return n_tokens / elapsed


async def runner_streams(model_path: Path, n_streams: int, n_tokens: int) -> float:
    """Aggregate decode tokens/s of `n_streams` concurrent requests, timed from the client side."""
    load = Load(model_path=str(model_path), num_ctx=2048, num_parallel=max(n_streams, 1))
    sampling = Sampling(temperature=0, num_predict=n_tokens, repeat_penalty=1.0)
    stamps: list[list[float]] = []
    async with open_runner(load) as runner:

        async def one(i: int) -> None:
            prompt = counting(1 + 1000 * i)
            mine: list[float] = []
            async with runner.completion(Completion(id=0, prompt=prompt, sampling=sampling)) as s:
                async for event in s:
                    if isinstance(event, Piece):
                        mine.append(time.perf_counter())
            stamps.append(mine)

        async with trio.open_nursery() as nursery:
            for i in range(n_streams):
                nursery.start_soon(one, i)
    # Steady state: only the window in which every stream is generating (prompts done, none
    # finished), so prompt processing and stragglers do not blur the comparison.
    start = max(s[0] for s in stamps)
    end = min(s[-1] for s in stamps)
    inside = sum(1 for s in stamps for t in s if start < t <= end)
    return inside / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = fetch_default_gguf()
    plain, single, four, eight = [], [], [], []
    for _ in range(args.rounds):
        plain.append(plain_loop(model, args.tokens))
        single.append(trio.run(runner_streams, model, 1, args.tokens))
        four.append(trio.run(runner_streams, model, 4, args.tokens))
        eight.append(trio.run(runner_streams, model, 8, args.tokens))
    med = statistics.median
    rows = [
        ("plain llama-cpp-python loop, 1 stream", f"{med(plain):7.1f} tok/s"),
        ("trio-ollama runner, 1 stream", f"{med(single):7.1f} tok/s"),
        ("  ratio runner / plain", f"{med(single) / med(plain):7.2f}  (target >= 0.95)"),
        ("trio-ollama runner, 4 streams", f"{med(four):7.1f} tok/s aggregate"),
        ("  ratio 4 streams / 1 stream", f"{med(four) / med(single):7.2f}  (target >= 1.3)"),
        ("trio-ollama runner, 8 streams", f"{med(eight):7.1f} tok/s aggregate"),
        ("  ratio 8 streams / 1 stream", f"{med(eight) / med(single):7.2f}"),
    ]
    print(f"model: {model.name}, {args.tokens} tokens per stream, median of {args.rounds} rounds")
    for label, value in rows:
        print(f"{label:<38}: {value}")


if __name__ == "__main__":
    main()
