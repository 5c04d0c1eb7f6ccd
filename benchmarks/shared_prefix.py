"""A long prompt start shared by every request (an agent's system prompt and tool schemas),
computed once: trio-ollama against llama-server, in one run, on the default model.

    .venv/bin/python -m benchmarks.shared_prefix [--clients 8] [--prefix 1500] [--rounds 3]

Each round has its own start of about `--prefix` tokens (so no round is served from the one
before). One request with that start warms one slot of each server; then two bursts of
`--clients` requests at once, each the start and a short tail of its own, `--tokens`
greedy tokens each:

- **first burst**: only the warmed slot holds the start; trio-ollama copies it into the other
  slots (runner/engine.py, `_take_prefix`); a server without that computes it in each.
- **own cache**: the same start with new tails, where each slot now holds the start
  itself. That is the best a slot's own prompt cache can do, and the figure the first burst
  is held to (goal: TTFT p50 at most 2x it).

Printed: TTFT p50 and p99 of each burst per target, the ratio trio-ollama / llama-server of the
first burst's TTFT p50 (goal: at most 0.5), the prompt and answer token counts each target
reported (they must agree: the same work), and the medians over the rounds. Both servers run
`--parallel` slots of 4,096 tokens, as benchmarks.serve starts them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import trio

from benchmarks.serve import (
    Level,
    LlamaServer,
    Target,
    TrioOllama,
    counting,
    llama_server_binary,
    load_average,
    percentile,
    run_level,
)
from trio_ollama.cpus import available_cpus


def shared_start(round_: int, tokens: int) -> str:
    """About `tokens` tokens (a digit is a token; a four-digit number and its comma and space
    are six), with a first line of its own per round."""
    return f"System {round_:03d}. Read these numbers.\n" + counting(1000 + 97 * round_, tokens // 6)


def burst(start: str, clients: int, offset: int) -> list[str]:
    """The shared start, then a short tail of each request's own: a few numbers SmolLM2 goes
    on counting from (it never ends a count early, so every answer has its full length)."""
    return [
        f"{start}\nRequest {offset + i}: " + counting(10 * (offset + i) + 1, 3)
        for i in range(clients)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--prefix", type=int, default=1500)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--llama-server", type=Path, default=None)
    parser.add_argument("--llama-args", default="", help='more llama-server flags: "-fa off"')
    args = parser.parse_args()
    binary = llama_server_binary(args.llama_server)
    print(f"load average at the start: {load_average()}")
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    servers: list[Target] = []
    try:
        servers.append(TrioOllama(args.parallel, logs / "trio-ollama.log"))
        if binary.is_file():
            extra = args.llama_args.split()
            servers.append(LlamaServer(binary, args.parallel, logs / "llama-server.log", extra))
        else:
            print(f"llama-server: not found at {binary} (see docs/performance.md); left out\n")
        rows: list[tuple[int, str, str, Level]] = []
        for round_ in range(args.rounds):
            start = shared_start(round_, args.prefix)
            for server in servers:
                trio.run(run_level, server, burst(start, 1, 100), 1)  # one slot holds it
                first = trio.run(run_level, server, burst(start, args.clients, 0), args.tokens)
                own = trio.run(run_level, server, burst(start, args.clients, 50), args.tokens)
                rows += [(round_, server.name, "first burst", first),
                         (round_, server.name, "own cache", own)]  # fmt: skip
        report(rows, args)
        print(f"load average at the end: {load_average()}")
    finally:
        for server in servers:
            server.close()  # type: ignore[attr-defined]
        shutil.rmtree(logs, ignore_errors=True)


def report(rows: list[tuple[int, str, str, Level]], args: argparse.Namespace) -> None:
    print(f"{args.clients} clients, a shared start of about {args.prefix} tokens and a short "
          f"tail each, {args.tokens} greedy tokens; {args.parallel} slots; "
          f"{available_cpus()} CPUs; {args.rounds} rounds; TTFT in ms\n")  # fmt: skip
    print(f"{'round':>5}  {'target':<13}{'burst':<13}{'p50':>8}{'p99':>8}  prompt tokens / answer")
    p50: dict[tuple[str, str], list[float]] = {}
    for round_, name, kind, level in rows:
        ttfts = [s.ttft * 1000 for s in level.streams]
        prompts = sorted({s.prompt_tokens for s in level.streams})
        answers = sorted({s.tokens for s in level.streams})
        print(f"{round_:>5}  {name:<13}{kind:<13}{percentile(ttfts, 0.5):>8.0f}"
              f"{percentile(ttfts, 0.99):>8.0f}  {prompts} / {answers}"
              f"{'' if level.complete else '  INCOMPLETE'}")  # fmt: skip
        p50.setdefault((name, kind), []).append(percentile(ttfts, 0.5))
    # The same work: every target counted the same prompts and answered in full.
    counts: dict[tuple[int, str], set[frozenset[int]]] = {}
    for round_, _, kind, level in rows:
        counts.setdefault((round_, kind), set()).add(
            frozenset(s.prompt_tokens for s in level.streams)
        )
    same = all(len(v) == 1 for v in counts.values()) and all(lv.complete for *_, lv in rows)
    print(f"\nsame prompt counts and full answers on every target: {'yes' if same else 'NO'}")
    med = {key: statistics.median(values) for key, values in p50.items()}
    print("\nmedians of the rounds' TTFT p50 (ms):")
    for (name, kind), value in med.items():
        print(f"  {name:<13}{kind:<13}{value:>8.0f}")
    trio_first = med[("trio-ollama", "first burst")]
    own = med[("trio-ollama", "own cache")]
    print(f"\ntrio-ollama first burst / its own-cache burst: {trio_first / own:.2f} (goal <= 2)")
    if ("llama-server", "first burst") in med:
        ratio = trio_first / med[("llama-server", "first burst")]
        print(f"trio-ollama / llama-server, first burst TTFT p50: {ratio:.2f} (goal <= 0.5)")
        for round_ in range(args.rounds):
            a = p50[("trio-ollama", "first burst")][round_]
            b = p50[("llama-server", "first burst")][round_]
            print(f"  round {round_}: {a / b:.2f}")


if __name__ == "__main__":
    main()
