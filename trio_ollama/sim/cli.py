"""`trio-ollama simulate`: a load generator spec against the real scheduler in virtual time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from trio_ollama.bench import cli as bench_cli
from trio_ollama.bench.spec import SpecError
from trio_ollama.sim.machine import Machine, MachineError, load_machine
from trio_ollama.sim.run import simulate


def add_parser(verbs: Any) -> None:
    sim = verbs.add_parser(
        "simulate", help="run a bench spec against the real scheduler in virtual time"
    )
    bench_cli.add_spec_arguments(sim)
    sim.add_argument("--machine", type=Path, help="a TOML machine file (docs/simulation.md)")
    sim.add_argument(
        "--calibrate",
        metavar="MODEL",
        help="measure MODEL through the real runner; write --machine",
    )


def main(args: argparse.Namespace) -> int:
    if args.calibrate:
        return _calibrate(args)
    try:
        spec = bench_cli.spec_of(args)
        machine = load_machine(args.machine) if args.machine else Machine()
    except (SpecError, MachineError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = simulate(spec, machine)
    simulated = sum(step.wall for step in results)
    print(f"simulated {simulated:.0f} s in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return bench_cli.report_run(args, spec, results)


def _calibrate(args: argparse.Namespace) -> int:
    from trio_ollama.config import Settings
    from trio_ollama.sim.calibrate import calibrate, machine_toml
    from trio_ollama.specs import model_spec
    from trio_ollama.store import Store, StoreError

    if args.machine is None:
        print("Error: --calibrate writes the file --machine names", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    try:
        details = Store(settings.models_dir).show(args.calibrate)
    except StoreError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    spec = model_spec(details)
    machine = calibrate(spec.name, spec.model_path, settings)
    args.machine.write_text(machine_toml(machine))
    print(machine_toml(machine), end="")
    print(f"wrote {args.machine}", file=sys.stderr)
    return 0
