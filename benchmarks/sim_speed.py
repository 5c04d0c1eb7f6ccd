"""How fast the simulator runs: a simulated hour of a 100-model Zipf workload.

    .venv/bin/python -m benchmarks.sim_speed [--seconds 3600] [--rate 20] [--profile out.prof]

Poisson arrivals at 20 a second over 100 Zipf-drawn models (72,000 requests in the hour), 32
prompt and 32 output tokens each, against one server with room for 20 models and 8 slots each,
the models decoding at 200 tokens/s and loading in 0.2 s. Prints the wall time, the requests
simulated a second of wall time, and the simulated span (the issue's target: the hour in under
a minute on one core, 1,200 requests a second).
"""

from __future__ import annotations

import argparse
import cProfile
import time
from typing import Any

from trio_ollama.bench import spec_from
from trio_ollama.bench.spec import Spec
from trio_ollama.sim import Machine, ModelProfile, simulate

MODELS = 100


def workload(seconds: float, rate: float = 20.0, seed: int = 1) -> Spec:
    data: dict[str, Any] = {
        "seed": seed,
        "load": {"mode": "open", "rate": [rate], "requests": int(seconds * rate)},
        "workload": {
            "models": [f"m{i:03d}" for i in range(MODELS)],
            "model_dist": "zipf",
            "prompt_tokens": 32,
            "output_tokens": 32,
        },
    }
    return spec_from(data)


MACHINE = Machine(
    memory_gib=64,
    env={"OLLAMA_MAX_LOADED_MODELS": "20", "OLLAMA_NUM_PARALLEL": "8"},
    default=ModelProfile(size_gib=0.5, load_seconds=0.2, tokens_per_second=200.0),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0, help="simulated span of arrivals")
    parser.add_argument("--rate", type=float, default=20.0, help="arrivals a second")
    parser.add_argument("--profile", help="write a cProfile of the run here")
    args = parser.parse_args()
    spec = workload(args.seconds, args.rate)
    profiler = cProfile.Profile() if args.profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    [step] = simulate(spec, MACHINE)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = len(step.outcomes)
    ok = sum(o.ok for o in step.outcomes)
    print(f"{n} requests ({ok} answered whole) over {step.wall:.0f} simulated s")
    print(f"wall {wall:.1f} s: {n / wall:.0f} requests/s, {step.wall / wall:.0f}x real time")
    # The machine may be shared: the process's own CPU time is the one-core figure.
    print(f"cpu {cpu:.1f} s: {n / cpu:.0f} requests/s")


if __name__ == "__main__":
    main()
