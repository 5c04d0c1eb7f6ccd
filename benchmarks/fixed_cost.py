"""The fixed cost of a request: time to the first token of a prompt of a few tokens (3 with the
default model; the count is printed) with one token out,
trio-ollama serve against llama-server, pairs sent back to back so that the machine's slow
moments fall on both halves of a pair.

    .venv/bin/python -m benchmarks.fixed_cost [--pairs 40] [--rounds 3] [--llama-server PATH]

A fresh connection for every request (as `benchmarks.serve`), streamed, greedy, a new prompt
each pair (no prompt cache on either side). Prints each round's medians and the median of the
pairs' differences (trio-ollama minus llama-server), and whether both servers read the same
number of prompt tokens every time. The goal it measures (issue 30): within 3 ms.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import trio

from benchmarks.serve import (
    LlamaServer,
    TrioOllama,
    llama_server_binary,
    load_average,
    run_level,
)


def prompt(k: int) -> str:
    """Four tokens, different every pair: a number of SmolLM2's single-digit tokens."""
    return f"{k % 10} {(k // 10) % 10}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--llama-server", type=Path, default=None)
    args = parser.parse_args()
    binary = llama_server_binary(args.llama_server)
    if not binary.is_file():
        raise SystemExit(f"llama-server: not found at {binary} (see docs/performance.md)")
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    print(f"load average at the start: {load_average()}")
    ours = TrioOllama(args.parallel, logs / "trio-ollama.log")
    theirs = LlamaServer(binary, args.parallel, logs / "llama-server.log", [])
    try:
        counts: set[tuple[int, int]] = set()
        medians = []
        for round_ in range(args.rounds):
            differences, mine, peer = [], [], []
            for k in range(args.pairs):
                text = prompt(round_ * args.pairs + k + 1)
                a = trio.run(run_level, ours, [text], 1).streams[0]
                b = trio.run(run_level, theirs, [text], 1).streams[0]
                counts.add((a.prompt_tokens, b.prompt_tokens))
                mine.append(a.ttft * 1e3)
                peer.append(b.ttft * 1e3)
                differences.append((a.ttft - b.ttft) * 1e3)
            med = statistics.median(differences)
            medians.append(med)
            print(f"round {round_}: TTFT p50 trio-ollama {statistics.median(mine):.1f} ms, "
                  f"llama-server {statistics.median(peer):.1f} ms; median of the {args.pairs} "
                  f"pairs' differences {med:+.1f} ms")  # fmt: skip
        same = all(x == y for x, y in counts)
        print(f"prompt tokens (trio-ollama, llama-server): {sorted(counts)}; "
              f"the same on both: {'yes' if same else 'NO'}")  # fmt: skip
        print(f"median of the rounds: {statistics.median(medians):+.1f} ms (goal: within 3 ms); "
              f"load average at the end: {load_average()}")  # fmt: skip
    finally:
        ours.close()
        theirs.close()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
