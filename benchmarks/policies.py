"""The scheduling policies beyond Ollama, measured in simulation (docs/experiments.md, "Policies"):
the real scheduler on the calibrated machine, in virtual time, each with and without its policy.

    .venv/bin/python -m benchmarks.policies [--machine benchmarks/machine.toml]

1. priority: an interactive class (priority 0) under a flood of batch requests (priority 10),
   with priorities honoured and with every request equal;
2. fair queues: requests for small models that must load while large models load, one lane
   (Ollama) against a lane per model; and Ollama #14578 replayed (two loaded models);
3. cost-aware eviction: a Zipf mix of large and small models in 16 GiB, Ollama's rule against
   the expected reload cost.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_ollama.bench import spec_from
from trio_ollama.bench.client import Outcome
from trio_ollama.bench.plan import WORDS, Planned, write_trace
from trio_ollama.bench.report import percentiles
from trio_ollama.config_file import ConfigFile, Policies
from trio_ollama.scheduler import Scheduler
from trio_ollama.scheduler.types import NoEvents
from trio_ollama.sim import Machine, ModelProfile, load_machine, simulate

OUT = Path("docs/experiments/policies")
MODEL = "smollm2:135m"


class LoadClock(NoEvents):
    """Scheduler events that add up the time spent loading, by model."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.loads = 0

    def loaded(self, model: str, seconds: float, ok: bool) -> None:
        self.seconds[model] = self.seconds.get(model, 0.0) + seconds
        self.loads += 1


@attrs.frozen
class Run:
    label: str
    outcomes: list[Outcome]
    loads: LoadClock

    def ttft(self, keep: Callable[[Outcome], bool] = lambda o: True) -> dict[str, float | None]:
        return percentiles([o.ttft for o in self.outcomes if o.ok and o.ttft is not None
                            and keep(o)])  # fmt: skip


def _run(label: str, spec: Any, machine: Machine) -> Run:
    clock = LoadClock()

    def watch(scheduler: Scheduler) -> None:
        scheduler.events = clock

    steps = simulate(spec, machine, on_scheduler=watch)
    return Run(label, [o for step in steps for o in step.outcomes], clock)


def _trace(requests: list[Planned]) -> Path:
    path = Path(tempfile.mkdtemp()) / "trace.jsonl"
    write_trace(sorted(requests, key=lambda r: r.at), path)
    return path


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# ----- 1. priority


def priority(machine: Machine) -> list[tuple[Run, Mapping[str, Any]]]:
    """Batch requests arrive at 1.5 a second for 4 minutes (more than 4 slots can serve, so a
    queue builds); interactive ones at one every 5 s. Both ask for 64 tokens."""
    rng = random.Random(21)
    requests: list[Planned] = []
    t = 0.0
    while t < 240:
        t += rng.expovariate(1.5)
        requests.append(Planned(index=0, at=t, model=MODEL, prompt=_words(rng, 30),
                                max_tokens=64, priority=10))  # fmt: skip
    t = 0.0
    while t < 240:
        t += rng.expovariate(0.2)
        requests.append(Planned(index=0, at=t, model=MODEL, prompt=_words(rng, 30),
                                max_tokens=64, priority=0))  # fmt: skip
    trace = _trace(requests)
    planned = sorted(requests, key=lambda r: r.at)
    interactive = {i for i, r in enumerate(planned) if r.priority == 0}
    spec = spec_from({"load": {"mode": "trace", "trace": str(trace)}, "timeout": 3600})
    runs = []
    for label, config in (
        ("every request equal (Ollama)", Policies(priority_aging=float("inf"))),
        ("priorities honoured", Policies()),
    ):
        if label.startswith("every"):
            # The same trace with the priorities taken out.
            equal = [attrs.evolve(r, priority=None) for r in planned]
            spec_equal = spec_from({"load": {"mode": "trace", "trace": str(_trace(equal))},
                                    "timeout": 3600})  # fmt: skip
            run = _run(label, spec_equal, attrs.evolve(machine, config=ConfigFile(policies=config)))
        else:
            run = _run(label, spec, attrs.evolve(machine, config=ConfigFile(policies=config)))
        runs.append((run, {
            "interactive": run.ttft(lambda o: o.index in interactive),
            "batch": run.ttft(lambda o: o.index not in interactive),
        }))  # fmt: skip
    return runs


# ----- 2. fair queues


def fair(machine: Machine) -> list[tuple[Run, Mapping[str, Any]]]:
    """2 large models (20 s loads) and 8 small ones (0.5 s), each used Zipf-wise with the large
    ones ranked in the middle; room for 4; a minute's keep-alive; 0.3 requests a second."""
    base = machine.profile(MODEL)
    large = attrs.evolve(base, load_seconds=20.0, size_gib=4.0)
    small = attrs.evolve(base, load_seconds=0.5, size_gib=0.5)
    names = ["s0", "s1", "L0", "s2", "s3", "L1", "s4", "s5", "s6", "s7"]
    models = {n: large if n.startswith("L") else small for n in names}
    spec = spec_from({
        "seed": 4,
        "load": {"mode": "open", "rate": [0.3], "requests": 600},
        "workload": {"models": names, "model_dist": "zipf", "zipf_s": 0.8,
                     "prompt_tokens": 30, "output_tokens": 32},
        "timeout": 3600,
    })  # fmt: skip
    env = {**machine.env, "OLLAMA_MAX_LOADED_MODELS": "4", "OLLAMA_KEEP_ALIVE": "1m",
           "OLLAMA_NUM_PARALLEL": "2"}  # fmt: skip
    runs = []
    for label, on in (("one lane (Ollama)", False), ("fair queues", True)):
        box = attrs.evolve(
            machine, env=env, models=models, config=ConfigFile(policies=Policies(fair_queues=on))
        )
        run = _run(label, spec, box)
        runs.append((run, {
            "small models": run.ttft(lambda o: not o.model.startswith("L")),
            "large models": run.ttft(lambda o: o.model.startswith("L")),
        }))  # fmt: skip
    return runs


def replay_14578(machine: Machine) -> list[tuple[Run, Mapping[str, Any]]]:
    """Ollama #14578: two loaded models; long requests on the large one, short ones on the
    small one. Is the small model's TTFT held up by the large model's work?"""
    base = machine.profile(MODEL)
    models = {"large": attrs.evolve(base, tokens_per_second=10.0, load_seconds=20.0),
              "small": base}  # fmt: skip
    rng = random.Random(8)
    requests = [Planned(index=0, at=0.0, model="large", prompt="warm", max_tokens=1),
                Planned(index=0, at=0.0, model="small", prompt="warm", max_tokens=1)]  # fmt: skip
    for i in range(40):
        requests.append(Planned(index=0, at=30.0 + i * 6, model="large",
                                prompt=_words(rng, 30), max_tokens=300))  # fmt: skip
        requests.append(Planned(index=0, at=31.0 + i * 6, model="small",
                                prompt=_words(rng, 30), max_tokens=16))  # fmt: skip
    spec = spec_from({"load": {"mode": "trace", "trace": str(_trace(requests))},
                      "timeout": 3600})  # fmt: skip
    env = {**machine.env, "OLLAMA_NUM_PARALLEL": "1"}
    runs = []
    for label, on in (("one lane (Ollama)", False), ("fair queues", True)):
        box = attrs.evolve(
            machine, env=env, models=models, config=ConfigFile(policies=Policies(fair_queues=on))
        )
        run = _run(label, spec, box)
        runs.append((run, {"small model": run.ttft(lambda o: o.model == "small" and o.sent > 1)}))
    return runs


# ----- 3. cost-aware eviction


def eviction(machine: Machine) -> list[tuple[Run, Mapping[str, Any]]]:
    """12 models in 16 GiB: 4 large (6 GiB, 30 s loads) and 8 small (1 GiB, 1 s loads), drawn
    Zipf-wise with sizes spread over the ranks; 0.2 requests a second."""
    base = machine.profile(MODEL)
    large = attrs.evolve(base, load_seconds=30.0, size_gib=6.0)
    small = attrs.evolve(base, load_seconds=1.0, size_gib=1.0)
    names = ["s0", "L0", "s1", "s2", "L1", "s3", "s4", "L2", "s5", "s6", "L3", "s7"]
    models = {n: large if n.startswith("L") else small for n in names}
    spec = spec_from({
        "seed": 17,
        "load": {"mode": "open", "rate": [0.2], "requests": 1000},
        "workload": {"models": names, "model_dist": "zipf", "zipf_s": 1.0,
                     "prompt_tokens": 30, "output_tokens": 32},
        "timeout": 7200,
    })  # fmt: skip
    env = {**machine.env, "OLLAMA_KEEP_ALIVE": "30m", "OLLAMA_NUM_PARALLEL": "2",
           "OLLAMA_MAX_LOADED_MODELS": "12"}  # fmt: skip
    runs = []
    for label, how in (("Ollama's rule", "ollama"), ("cost-aware", "cost")):
        box = attrs.evolve(machine, memory_gib=16.0, env=env, models=models,
                           config=ConfigFile(policies=Policies(eviction=how)))  # type: ignore[arg-type]  # fmt: skip
        run = _run(label, spec, box)
        runs.append((run, {"all": run.ttft()}))
    return runs


# ----- printing and plotting


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(title: str, runs: list[tuple[Run, Mapping[str, Any]]], path: Path | None) -> None:
    print(f"\n{title}\n")
    classes = list(runs[0][1])
    print("| run | " + " | ".join(f"{c} TTFT p50 | {c} TTFT p99" for c in classes)
          + " | loads | time loading |")  # fmt: skip
    print("| --- " * (3 + 2 * len(classes)) + "|")
    for run, by_class in runs:
        cells = " | ".join(f"{_ms(by_class[c]['p50'])} | {_ms(by_class[c]['p99'])}"
                           for c in classes)  # fmt: skip
        total = sum(run.loads.seconds.values())
        print(f"| {run.label} | {cells} | {run.loads.loads} | {total:.0f} s |")
    if path is not None:
        _plot(title, runs, path)


def _plot(title: str, runs: list[tuple[Run, Mapping[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(runs[0][1])
    fig, axes = plt.subplots(1, len(classes) + 1, figsize=(4.5 * (len(classes) + 1), 3.8))
    labels = [run.label for run, _ in runs]
    for ax, c in zip(axes, classes, strict=False):
        xs = range(len(runs))
        ax.bar([x - 0.2 for x in xs], [by[c]["p50"] or 0 for _, by in runs], 0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], [by[c]["p99"] or 0 for _, by in runs], 0.4, label="p99")
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel("time to first token (s)")
        ax.set_title(c)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
    last = axes[-1]
    last.bar(labels, [sum(run.loads.seconds.values()) for run, _ in runs])
    last.set_ylabel("seconds spent loading models")
    last.tick_params(axis="x", labelsize=8)
    last.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machine", type=Path, default=Path("benchmarks/machine.toml"))
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    machine = load_machine(args.machine)
    if MODEL not in machine.models:
        machine = attrs.evolve(machine, models={MODEL: ModelProfile()})

    def out(name: str) -> Path | None:
        return None if args.no_plots else OUT / name

    report("1. priority: interactive (0) under a batch flood (10), 4 slots",
           priority(machine), out("priority.png"))  # fmt: skip
    report("2a. fair queues: small models loading beside 20 s loads",
           fair(machine), out("fair-queues.png"))  # fmt: skip
    report("2b. Ollama #14578 replayed: a short request beside a long one on another model",
           replay_14578(machine), out("replay-14578.png"))  # fmt: skip
    report("3. eviction in 16 GiB: 4 large (6 GiB, 30 s) and 8 small (1 GiB, 1 s) models",
           eviction(machine), out("eviction.png"))  # fmt: skip


if __name__ == "__main__":
    main()
