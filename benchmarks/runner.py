"""The runner alone (subprocess, socket, protocol, batching loop) against the plain in-process
batched loop, measured in one run with the same end-to-end measure as `benchmarks.serve`.

    .venv/bin/python -m benchmarks.runner [--clients 1,4,8] [--tokens 128] [--rounds 3]

At the settings `serve` gives a model with OLLAMA_NUM_PARALLEL=8: 8 slots of 4,096 tokens, this
machine's CPUs as threads. Each level starts its requests at once; aggregate tok/s is all the
tokens over the wall time from the first request sent to the last token received, prompt
processing included. A stream that ends short of the token count is reported, not averaged.
Where this differs from `benchmarks.serve`, the difference is the HTTP server's cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from benchmarks.serve import NUM_CTX, Stream, counting, percentile, run_plain
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Completion, Load, Piece, Sampling
from trio_ollama.store.default_model import fetch_default_gguf

PARALLEL = 8


async def runner_level(prompts: list[str], n_tokens: int) -> list[Stream]:
    load = Load(model_path=str(fetch_default_gguf()), num_ctx=NUM_CTX, num_parallel=PARALLEL)
    sampling = Sampling(temperature=0, num_predict=n_tokens, repeat_penalty=1.0)
    streams: list[Stream] = []
    async with open_runner(load) as runner:

        async def one(prompt: str, stream: Stream) -> None:
            request = Completion(id=0, prompt=prompt, sampling=sampling)
            async with runner.completion(request) as events:
                async for event in events:
                    if isinstance(event, Piece):
                        stream.stamps.append(time.perf_counter())
                    else:
                        stream.tokens = event.eval_count
                        stream.prompt_tokens = event.prompt_eval_count

        async with trio.open_nursery() as nursery:
            started = time.perf_counter()
            for prompt in prompts:
                streams.append(Stream(started))
                nursery.start_soon(one, prompt, streams[-1])
    return streams


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    figures: dict[tuple[str, int], list[float]] = {}
    ttfts: dict[tuple[str, int], list[float]] = {}
    short: set[tuple[str, int]] = set()
    for round_ in range(args.rounds):
        for n in levels:
            prompts = [counting(1 + 37 * i + 5000 * round_ + 100_000 * n) for i in range(n)]
            for name in ("plain loop", "runner"):
                if name == "runner":
                    streams = trio.run(runner_level, prompts, args.tokens)
                else:
                    streams = run_plain(n, args.tokens, prompts)
                if any(s.tokens != args.tokens for s in streams):
                    short.add((name, n))
                wall = max(s.stamps[-1] for s in streams) - min(s.sent for s in streams)
                figures.setdefault((name, n), []).append(sum(s.tokens for s in streams) / wall)
                ttfts.setdefault((name, n), []).extend(s.ttft for s in streams)
    med = statistics.median
    print(f"{args.tokens} tokens a stream, greedy; {PARALLEL} slots of {NUM_CTX}; "
          f"median of {args.rounds} rounds\n")  # fmt: skip
    print(f"{'target':<12}{'clients':>8}{'tok/s':>9}{'ratio':>7}{'TTFT p50 ms':>13}")
    for n in levels:
        for name in ("plain loop", "runner"):
            if (name, n) in short:
                print(f"{name:<12}{n:>8}  stopped early, left out")
                continue
            tok = med(figures[name, n])
            ratio = tok / med(figures["plain loop", n]) if ("plain loop", n) not in short else 0
            ttft = percentile(ttfts[name, n], 0.5) * 1e3
            print(f"{name:<12}{n:>8}{tok:>9.1f}{ratio:>7.2f}{ttft:>13.1f}")


if __name__ == "__main__":
    main()
