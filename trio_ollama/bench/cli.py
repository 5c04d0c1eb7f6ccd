"""`trio-ollama bench run | compare | ceiling` (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from trio_ollama.bench.drive import StepResult, run_spec
from trio_ollama.bench.plan import steps
from trio_ollama.bench.report import (
    PlotsUnavailable,
    plot,
    read_result,
    result_json,
    table,
    write_result,
)
from trio_ollama.bench.spec import Spec, SpecError, load_spec, spec_from


def add_parser(verbs: Any) -> None:
    bench = verbs.add_parser(
        "bench", help="load-test any Ollama- or OpenAI-compatible server (docs/benchmarks.md)"
    )
    actions = bench.add_subparsers(dest="bench_action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run a workload and write its result file")
    add_spec_arguments(run)
    compare = actions.add_parser("compare", help="result files side by side")
    compare.add_argument("results", nargs="+", type=Path)
    compare.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots here")
    ceiling = actions.add_parser("ceiling", help="the generator's own limit, on a trivial server")
    ceiling.add_argument("--concurrency", type=int, default=32)
    ceiling.add_argument("--requests", type=int, default=400)
    ceiling.add_argument("--tokens", type=int, default=256)


def add_spec_arguments(run: argparse.ArgumentParser) -> None:
    """A spec file and the flags that override it (`bench run`, and `simulate`)."""
    run.add_argument("spec", nargs="?", type=Path, help="a TOML or JSON spec (flags override)")
    run.add_argument("--target", help="base URL (default http://127.0.0.1:11434)")
    run.add_argument("--api", help="generate, chat, openai-chat or openai-completions")
    run.add_argument("--model", action="append", help="a model; repeat for a mix")
    run.add_argument("--concurrency", help="closed loop: clients, or a sweep: 1,4,8")
    run.add_argument("--rate", help="open loop: requests a second, or a sweep: 1,2,4")
    run.add_argument("--requests", type=int, help="requests per step")
    run.add_argument("--duration", type=float, help="seconds per step")
    run.add_argument("--prompt-tokens", type=int, help="prompt length (about, in words)")
    run.add_argument("--output-tokens", type=int, help="tokens to generate")
    run.add_argument("--seed", type=int)
    run.add_argument("--raw", action="store_true", help="generate: send prompts raw")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help='any spec key, dotted: --set workload.shared_prefix=0.5')  # fmt: skip
    run.add_argument("-o", "--out", type=Path, help="result file (default bench-TIME.json)")
    run.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots here")


def main(args: argparse.Namespace) -> int:
    try:
        if args.bench_action == "run":
            return _run(args)
        if args.bench_action == "compare":
            return _compare(args)
        return _ceiling(args)
    except SpecError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2


def spec_of(args: argparse.Namespace) -> Spec:
    """The spec that `add_spec_arguments`' flags describe."""
    flags: dict[str, Any] = {}
    for key, value in (("target", args.target), ("api", args.api), ("seed", args.seed),
                       ("load.requests", args.requests), ("load.duration", args.duration),
                       ("workload.models", args.model),
                       ("workload.prompt_tokens", args.prompt_tokens),
                       ("workload.output_tokens", args.output_tokens)):  # fmt: skip
        if value is not None:
            flags[key] = value
    if args.concurrency and args.rate:
        raise SpecError("--concurrency and --rate: a closed loop or an open one, not both")
    # Each sets its own value; it picks the mode only against the default (closed) or the
    # other loop, never over a spec's bursts or trace.
    mode = _spec_mode(args.spec)
    if args.concurrency:
        flags["load.concurrency"] = [int(x) for x in args.concurrency.split(",")]
        if mode == "open":
            flags["load.mode"] = "closed"
    if args.rate:
        flags["load.rate"] = [float(x) for x in args.rate.split(",")]
        if mode == "closed":
            flags["load.mode"] = "open"
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise SpecError(f"--set {item}: KEY=VALUE")
        try:
            flags[key] = json.loads(text)
        except json.JSONDecodeError:
            flags[key] = text
    if args.spec is not None:
        spec = load_spec(args.spec, flags)
    else:
        data: dict[str, Any] = {}
        for dotted, value in flags.items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        spec = spec_from(data)
    list(steps(spec))  # a bad trace is refused here, before anything is sent
    return spec


def _spec_mode(path: Path | None) -> str:
    if path is None:
        return "closed"
    try:
        return str(load_spec(path).load.mode)
    except SpecError:
        return "closed"  # load_spec says what is wrong, with the flags applied


async def _measure(spec: Spec, results: list[StepResult], raw: bool) -> None:
    """Run until done or until Ctrl-C; either way `results` holds what was measured."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                async for _ in signals:
                    print("\ninterrupted: writing what was measured", file=sys.stderr)
                    nursery.cancel_scope.cancel()

            nursery.start_soon(interrupt)
            await run_spec(spec, results, raw=raw)
            nursery.cancel_scope.cancel()


def _run(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    results: list[StepResult] = []
    trio.run(_measure, spec, results, args.raw)
    return report_run(args, spec, results)


def report_run(args: argparse.Namespace, spec: Spec, results: list[StepResult]) -> int:
    """Write the result file, print its table, draw its plots if asked."""
    result = result_json(spec, results)
    out = args.out or Path(time.strftime("bench-%Y%m%d-%H%M%S.json"))
    write_result(out, result)
    print(table([(out.stem, result)]), end="")
    print(f"wrote {out}")
    if args.plots:
        try:
            written = plot([(out.stem, result)], args.plots)
        except PlotsUnavailable as exc:
            print(f"Error: {exc}; then `trio-ollama bench compare {out} --plots {args.plots}` "
                  "draws them from the result file", file=sys.stderr)  # fmt: skip
            return 1
        for path in written:
            print(f"wrote {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    try:
        results = [(path.stem, read_result(path)) for path in args.results]
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(table(results), end="")
    if args.plots:
        try:
            written = plot(results, args.plots)
        except PlotsUnavailable as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path}")
    return 0


def _ceiling(args: argparse.Namespace) -> int:
    """The echo endpoint in a process of its own, driven flat out from this one."""
    echo = subprocess.Popen(
        [sys.executable, "-m", "trio_ollama.bench.echo", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert echo.stdout is not None
        url = echo.stdout.readline().strip()
        spec = spec_from({
            "target": url, "seed": 1,
            "load": {"mode": "closed", "concurrency": [args.concurrency],
                     "requests": args.requests},
            "workload": {"output_tokens": args.tokens, "prompt_tokens": 16},
        })  # fmt: skip
        results: list[StepResult] = []
        before = os.times()
        trio.run(_measure, spec, results, False)
        after = os.times()
    finally:
        echo.terminate()
        echo.wait()
    summary = result_json(spec, results)["steps"][0]["summary"]
    cpu = (after.user - before.user) + (after.system - before.system)
    busy = cpu / summary["wall_s"]
    # The echo server shares the machine: what the generator costs is its CPU per token, and
    # what one core of it could drive is that turned around.
    per_core = summary["output_tokens_per_s"] / busy if busy else float("nan")
    print(f"generator ceiling (one process, {args.concurrency} clients, {args.tokens} tokens "
          f"a request): {summary['requests_per_s']:.1f} requests/s and "
          f"{summary['output_tokens_per_s']:.0f} tokens/s driven, using {busy:.2f} of a core: "
          f"{per_core:.0f} tokens/s and {summary['requests_per_s'] / busy:.0f} requests/s "
          f"a core")  # fmt: skip
    return 0
