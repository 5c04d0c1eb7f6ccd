"""The fleet measured (docs/scale-out.md), on a local Ray cluster of a head and two worker
nodes, on 127.0.0.1, with the real default model:

1. The hop: TTFT p50 and tokens a second through the ingress against straight to the one
   replica's server, at 1 and 8 clients, rounds alternating the two (`trio-ollama bench`'s
   closed loop).
2. Experiment 4 of docs/experiments.md for real at this machine's size: 2 replicas with room for
   2 models each, 5 models drawn Zipf-wise, Poisson arrivals; random against affinity routing:
   loads, TTFT p50/p99, requests a second; beside the simulator's prediction for the same
   setup (`benchmarks/machine.toml`, calibrated here).

    .venv/bin/python -m benchmarks.fleet [--rounds 3] [--skip-hop] [--skip-routing]

Run it on a quiet machine: every figure is printed with the ratio it is judged by."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from ray import serve

from tests.fleet import fleet_servers, store_with_models
from tests.server import free_port
from trio_ollama.bench import StepResult, run_spec, spec_from, summarize
from trio_ollama.fleet.app import FleetOptions, fleet_app
from trio_ollama.fleet.cluster import local_cluster, start_serve
from trio_ollama.scheduler import Scheduler
from trio_ollama.sim import load_machine, simulate

MACHINE = Path(__file__).with_name("machine.toml")


def quiet(_: str, __: int, ___: int) -> None:
    """No progress lines."""


def measure(spec_data: dict[str, Any]) -> list[dict[str, Any]]:
    spec = spec_from(spec_data)
    results: list[StepResult] = []
    trio.run(lambda: run_spec(spec, results, progress=quiet))
    return [summarize(step, spec) for step in results]


def deploy(options: FleetOptions, port: int) -> str:
    serve.run(fleet_app(options), name="fleet", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def hop(root: Path, port: int, rounds: int, cores: int) -> None:
    env = {"OLLAMA_MODELS": str(root), "OLLAMA_NUM_PARALLEL": "8", "OLLAMA_NOPRUNE": "1"}
    ingress = deploy(FleetOptions(replicas=1, env=env, cores_per_replica=cores), port)
    (server,) = fleet_servers(root)
    spec = {"load": {"mode": "closed", "concurrency": [1, 8], "requests": 16},
            "workload": {"prompt_tokens": 16, "output_tokens": 32,
                         "options": {"temperature": 0}}}  # fmt: skip
    measure({**spec, "target": ingress})  # warm: the model loaded, connections made
    on = f"on {cores} core(s) of its own" if cores else "on every core"
    print(f"\n1. The hop: one replica (its server {on}), straight to its server against "
          "through the ingress")  # fmt: skip
    print("round clients  direct TTFT p50  ingress TTFT p50  added   direct tok/s  ingress "
          "tok/s  ratio")  # fmt: skip
    added: dict[int, list[float]] = {1: [], 8: []}
    ratios: dict[int, list[float]] = {1: [], 8: []}
    for n in range(rounds):
        direct = measure({**spec, "target": server.url})
        through = measure({**spec, "target": ingress})
        for c, d, t in zip((1, 8), direct, through, strict=True):
            ms = (t["ttft_s"]["p50"] - d["ttft_s"]["p50"]) * 1000
            ratio = t["output_tokens_per_s"] / d["output_tokens_per_s"]
            added[c].append(ms)
            ratios[c].append(ratio)
            print(f"{n + 1:5} {c:7} {d['ttft_s']['p50'] * 1000:13.1f} ms "
                  f"{t['ttft_s']['p50'] * 1000:14.1f} ms {ms:+6.1f} ms "
                  f"{d['output_tokens_per_s']:10.1f} {t['output_tokens_per_s']:13.1f} "
                  f"{ratio:6.2f}x")  # fmt: skip
    for c in (1, 8):
        print(f"{c} clients: TTFT p50 added {_med(added[c]):+.1f} ms (median of rounds), "
              f"throughput {_med(ratios[c]):.2f}x")  # fmt: skip
    serve.delete("fleet")


def _med(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def routing(root: Path, names: list[str], port: int, rounds: int, requests: int,
            rate: float) -> None:  # fmt: skip
    env = {"OLLAMA_MODELS": str(root), "OLLAMA_MAX_LOADED_MODELS": "2",
           "OLLAMA_NUM_PARALLEL": "2", "OLLAMA_NOPRUNE": "1"}  # fmt: skip
    spec = {"seed": 4, "load": {"mode": "open", "rate": [rate], "requests": requests},
            "workload": {"models": names, "model_dist": "zipf", "zipf_s": 1.1,
                         "prompt_tokens": 30, "output_tokens": 16}}  # fmt: skip
    machine = load_machine(MACHINE)
    profile = machine.profile("smollm2:135m")
    print(f"\n2. Experiment 4 for real: 2 replicas (a core each) with room for 2 models each, "
          f"{len(names)} models (Zipf 1.1), {requests} requests Poisson at {rate:g}/s")  # fmt: skip
    print("run               loads  TTFT p50  TTFT p99  requests/s  errors")
    for how in ("random", "affinity"):
        seen: list[Scheduler] = []
        # Each simulated server as the real ones: one core of its own.
        sim_machine = attrs.evolve(machine, env={**machine.env, **env}, servers=2, cores=1,
                                   routing=how, models=dict.fromkeys(names, profile))  # fmt: skip
        sim_spec = spec_from({**spec, "target": "http://127.0.0.1:1"})
        simulated = simulate(sim_spec, sim_machine, on_scheduler=seen.append)
        (predicted,) = [summarize(s, sim_spec) for s in simulated]
        _row(f"sim {how}", sum(s.loads for s in seen), predicted)
        for n in range(rounds):
            options = FleetOptions(replicas=2, routing=how, env=env, cores_per_replica=1)
            url = deploy(options, port)
            (step,) = measure({**spec, "target": url})
            _row(f"real {how} #{n + 1}", _fleet_loads(url), step)
            serve.delete("fleet")


def _row(label: str, loads: float, step: dict[str, Any]) -> None:
    ttft = step["ttft_s"]
    errors = sum(step["errors"].values())
    print(f"{label:17} {loads:5.0f} {ttft['p50']:8.2f} s {ttft['p99']:7.2f} s "
          f"{step['requests_per_s']:10.2f}  {errors}")  # fmt: skip


def _fleet_loads(url: str) -> float:
    """Loads across the fleet, from its /metrics (each replica's, labelled)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=30).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        if f.name == "trio_ollama_loads"
        for s in f.samples
        if s.name.endswith("_total") and s.labels.get("result", "ok") == "ok"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="of the hop")
    parser.add_argument("--routing-rounds", type=int, default=1)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--hop-cores", type=int, default=0, help="the hop's server's cores")
    parser.add_argument("--skip-hop", action="store_true")
    parser.add_argument("--skip-routing", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        store, names = store_with_models(Path(tmp), args.models)
        port = free_port()
        with local_cluster(workers=2) as _:
            start_serve(port)
            if not args.skip_hop:
                hop(store.layout.root, port, args.rounds, args.hop_cores)
            if not args.skip_routing:
                routing(
                    store.layout.root, names, port, args.routing_rounds, args.requests, args.rate
                )
            serve.shutdown()
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f}; took {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
