"""Scheduling questions answered in simulation (docs/experiments.md): the real scheduler, the
calibrated machine, virtual time.

    .venv/bin/python -m benchmarks.experiments [--machine benchmarks/machine.toml]

1. keep-alive against reload cost: 10 models drawn Zipf-wise, room for 3, 10 s loads, a request
   every 20 s on average; TTFT and
   loads as OLLAMA_KEEP_ALIVE goes from 30 s to forever.
2. num_parallel: throughput against TTFT as concurrency grows, for 1, 2, 4 and 8 slots, on the
   calibrated default model.
3. max loaded models: eviction churn and TTFT as the mix widens from 2 to 50 models, with room
   for 3.
4. scale-out on paper: 4 servers behind a router, random against model-affinity routing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import attrs

from trio_ollama.bench import result_json, spec_from
from trio_ollama.bench.report import plot, table
from trio_ollama.scheduler import Scheduler
from trio_ollama.sim import Machine, ModelProfile, load_machine, simulate

OUT = Path("docs/experiments")


def keep_alive(machine: Machine) -> list[tuple[str, dict[str, Any], int]]:
    base = machine.profile("smollm2:135m")
    slow = attrs.evolve(base, load_seconds=10.0)
    models = {f"m{i}": slow for i in range(10)}
    spec = spec_from({
        "seed": 3,
        "load": {"mode": "open", "rate": [0.05], "requests": 600},
        "workload": {"models": list(models), "model_dist": "zipf", "zipf_s": 1.1,
                     "prompt_tokens": 30, "output_tokens": 32},
    })  # fmt: skip
    runs = []
    for value in ("30s", "1m", "5m", "30m", "-1"):
        env = {**machine.env, "OLLAMA_MAX_LOADED_MODELS": "3", "OLLAMA_KEEP_ALIVE": value,
               "OLLAMA_NUM_PARALLEL": "2"}  # fmt: skip
        seen: list[Scheduler] = []
        results = simulate(spec, attrs.evolve(machine, env=env, models=models),
                           on_scheduler=seen.append)  # fmt: skip
        runs.append((f"keep_alive={value}", result_json(spec, results), seen[0].loads))
    return runs


def parallel(machine: Machine) -> list[tuple[str, dict[str, Any], int]]:
    spec = spec_from({
        "seed": 5,
        "load": {"mode": "closed", "concurrency": [1, 2, 4, 8, 16], "requests": 48},
        "workload": {"models": ["smollm2:135m"], "prompt_tokens": 30, "output_tokens": 64},
    })  # fmt: skip
    runs = []
    for n in (1, 2, 4, 8):
        env = {**machine.env, "OLLAMA_NUM_PARALLEL": str(n)}
        results = simulate(spec, attrs.evolve(machine, env=env))
        runs.append((f"num_parallel={n}", result_json(spec, results), 0))
    return runs


def widening(machine: Machine) -> list[tuple[int, dict[str, Any], int]]:
    base = attrs.evolve(machine.profile("smollm2:135m"), load_seconds=10.0)
    runs = []
    for n in (2, 3, 5, 10, 20, 50):
        models = {f"m{i}": base for i in range(n)}
        spec = spec_from({
            "seed": 9,
            "load": {"mode": "open", "rate": [0.2], "requests": 400},
            "workload": {"models": list(models), "model_dist": "zipf", "zipf_s": 1.1,
                         "prompt_tokens": 30, "output_tokens": 32},
        })  # fmt: skip
        env = {**machine.env, "OLLAMA_MAX_LOADED_MODELS": "3", "OLLAMA_NUM_PARALLEL": "2"}
        seen: list[Scheduler] = []
        results = simulate(spec, attrs.evolve(machine, env=env, models=models),
                           on_scheduler=seen.append)  # fmt: skip
        runs.append((n, result_json(spec, results), seen[0].loads))
    return runs


def routing(machine: Machine) -> list[tuple[str, dict[str, Any], int]]:
    base = attrs.evolve(machine.profile("smollm2:135m"), load_seconds=10.0)
    models = {f"m{i}": base for i in range(20)}
    spec = spec_from({
        "seed": 12,
        "load": {"mode": "open", "rate": [0.8], "requests": 800},
        "workload": {"models": list(models), "model_dist": "zipf", "zipf_s": 1.1,
                     "prompt_tokens": 30, "output_tokens": 32},
    })  # fmt: skip
    env = {**machine.env, "OLLAMA_MAX_LOADED_MODELS": "3", "OLLAMA_NUM_PARALLEL": "2"}
    runs = []
    for how in ("random", "affinity"):
        seen: list[Scheduler] = []
        servers = attrs.evolve(machine, env=env, models=models, servers=4, routing=how)
        results = simulate(spec, servers, on_scheduler=seen.append)
        runs.append((f"routing={how}", result_json(spec, results), sum(s.loads for s in seen)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machine", type=Path, default=Path("benchmarks/machine.toml"))
    args = parser.parse_args()
    machine = load_machine(args.machine)
    if "smollm2:135m" not in machine.models:
        machine = attrs.evolve(machine, models={"smollm2:135m": ModelProfile()})
    print("1. keep-alive against reload cost (10 models, room for 3, 10 s loads, 0.05 req/s)\n")
    runs = keep_alive(machine)
    print(table([(name, result) for name, result, _ in runs]), end="")
    for name, result, loads in runs:
        s = result["steps"][0]["summary"]
        print(f"{name:<18} loads {loads:4d}   TTFT p50 {s['ttft_s']['p50']:.2f} s, "
              f"p99 {s['ttft_s']['p99']:.2f} s")  # fmt: skip
    _plot_keep_alive(runs, OUT / "keep-alive.png")
    print("\n2. num_parallel: throughput against TTFT as concurrency grows\n")
    runs = parallel(machine)
    print(table([(name, result) for name, result, _ in runs]), end="")
    plot([(name, result) for name, result, _ in runs], OUT / "num-parallel")
    print("\n3. max loaded models 3: churn and TTFT as the mix widens (0.2 req/s, 10 s loads)\n")
    wide = widening(machine)
    for n, result, loads in wide:
        s = result["steps"][0]["summary"]
        print(f"{n:3d} models   loads {loads:4d} ({loads / s['requests']:.2f} a request)   "
              f"TTFT p50 {s['ttft_s']['p50']:.2f} s, p99 {s['ttft_s']['p99']:.2f} s")  # fmt: skip
    _plot_widening(wide, OUT / "widening.png")
    print("\n4. four servers, room for 3 models each, 20 models, 0.8 req/s: routing\n")
    routed = routing(machine)
    print(table([(name, result) for name, result, _ in routed]), end="")
    for name, result, loads in routed:
        s = result["steps"][0]["summary"]
        print(f"{name:<18} loads {loads:4d}   TTFT p50 {s['ttft_s']['p50']:.2f} s, "
              f"p99 {s['ttft_s']['p99']:.2f} s")  # fmt: skip
    plot([(name, result) for name, result, _ in routed], OUT / "routing")


def _plot_keep_alive(runs: list[tuple[str, dict[str, Any], int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [name.split("=", 1)[1] for name, _, _ in runs]
    summaries = [result["steps"][0]["summary"] for _, result, _ in runs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar(labels, [loads for _, _, loads in runs])
    axes[0].set_ylabel("model loads in 600 requests")
    axes[1].plot(labels, [s["ttft_s"]["p50"] for s in summaries], "o-", label="p50")
    axes[1].plot(labels, [s["ttft_s"]["p99"] for s in summaries], "x--", label="p99")
    axes[1].set_ylabel("time to first token (s)")
    axes[1].legend()
    for ax in axes:
        ax.set_xlabel("OLLAMA_KEEP_ALIVE (-1: for ever)")
        ax.grid(alpha=0.3)
    fig.suptitle("10 models (Zipf 1.1), room for 3, 10 s loads, a request every 20 s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_widening(runs: list[tuple[int, dict[str, Any], int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [n for n, _, _ in runs]
    summaries = [result["steps"][0]["summary"] for _, result, _ in runs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(
        xs, [loads / s["requests"] for (_, _, loads), s in zip(runs, summaries, strict=True)], "o-"
    )
    axes[0].set_ylabel("loads per request")
    axes[1].plot(xs, [s["ttft_s"]["p50"] for s in summaries], "o-", label="p50")
    axes[1].plot(xs, [s["ttft_s"]["p99"] for s in summaries], "x--", label="p99")
    axes[1].set_ylabel("time to first token (s)")
    axes[1].legend()
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("models in the mix (Zipf 1.1), room for 3")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
