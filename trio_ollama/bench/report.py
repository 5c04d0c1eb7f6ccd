"""Results: the JSON file (schema `trio-ollama-bench/1`, docs/benchmarks.md), the summary table,
the plots, and `compare` across result files."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trio_ollama.bench.client import Outcome
from trio_ollama.bench.drive import StepResult
from trio_ollama.bench.spec import Spec

SCHEMA = "trio-ollama-bench/1"
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for name, q in QUANTILES:
        if not ordered:
            out[name] = None
            continue
        k = (len(ordered) - 1) * q
        low, high = math.floor(k), math.ceil(k)
        out[name] = ordered[low] + (ordered[high] - ordered[low]) * (k - low)
    return out


def summarize(step: StepResult, spec: Spec) -> dict[str, Any]:
    done = step.outcomes
    ok = [o for o in done if o.ok]
    errors = Counter(_kind(o) for o in done if o.error or (o.status not in (0, 200)))
    output = sum(o.output_tokens or 0 for o in done)
    wall = step.wall

    def per_s(count: float) -> float | None:  # None, not NaN: the file stays valid JSON
        return count / wall if wall > 0 else None

    good = [
        o for o in ok
        if o.ttft is not None and o.ttft <= spec.slo.ttft and (o.tpot or 0) <= spec.slo.tpot
    ]  # fmt: skip
    return {
        "label": step.label,
        "requests": len(done),
        "planned": step.planned,
        "ok": len(ok),
        "errors": dict(errors),
        "disconnects": {
            kind: sum(1 for o in done if o.disconnect == kind and o.disconnected)
            for kind in ("queue", "prefill", "after_tokens")
        },
        "wall_s": step.wall,
        "requests_per_s": per_s(len(ok)),
        "output_tokens": output,
        "output_tokens_per_s": per_s(output),
        "prompt_tokens": sum(o.prompt_tokens or 0 for o in done),
        "goodput_per_s": per_s(len(good)),
        "ttft_s": percentiles([o.ttft for o in ok if o.ttft is not None]),
        "tpot_s": percentiles([t for o in ok if (t := o.tpot) is not None]),
        "itl_s": percentiles([g for o in ok for g in o.gaps]),
        "e2e_s": percentiles([o.e2e for o in ok if o.e2e is not None]),
        # How late requests went out against their plan: the evidence that the generator
        # kept up (open loops and traces; empty in a closed loop).
        "send_lag_s": percentiles([o.sent - o.planned for o in done if o.planned is not None]),
        "interrupted": step.interrupted,
    }


def _kind(outcome: Outcome) -> str:
    if outcome.status and outcome.status != 200:
        return f"http {outcome.status}"
    return outcome.error.split(":", 1)[0][:60] or "error"


def result_json(spec: Spec, steps: list[StepResult]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "spec": spec.to_json(),
        "steps": [
            {
                "summary": summarize(step, spec),
                "concurrency": step.concurrency,
                "requests": [o.to_json() for o in step.outcomes],
                "metrics_before": step.metrics_before,
                "metrics_after": step.metrics_after,
            }
            for step in steps
        ],
    }


def write_result(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)


def read_result(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} result")
    return data


def _rate(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.0f}"


def table(results: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One row per step (of each named result): throughput, goodput and latency quantiles."""
    header = ["run", "step", "ok/sent", "req/s", "tok/s", "good/s", "TTFT p50", "p99",
              "ITL p50", "p99", "e2e p50", "p99", "errors"]  # fmt: skip
    rows = [header]
    for name, result in results:
        for step in result["steps"]:
            s = step["summary"]
            errors = sum(s["errors"].values())
            rows.append([
                name, s["label"] + (" (cut)" if s["interrupted"] else ""),
                f"{s['ok']}/{s['requests']}", _rate(s["requests_per_s"], 2),
                _rate(s["output_tokens_per_s"], 1), _rate(s["goodput_per_s"], 2),
                _ms(s["ttft_s"]["p50"]), _ms(s["ttft_s"]["p99"]),
                _ms(s["itl_s"]["p50"]), _ms(s["itl_s"]["p99"]),
                _ms(s["e2e_s"]["p50"]), _ms(s["e2e_s"]["p99"]), str(errors),
            ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n(latencies in ms)\n"


class PlotsUnavailable(Exception):
    """Plots were asked for, and matplotlib (an optional dependency) is not installed."""


def plot(results: Sequence[tuple[str, dict[str, Any]]], directory: Path) -> list[Path]:
    """Latency CDFs, throughput and latency against the sweep, TTFT over the run: PNGs.
    `PlotsUnavailable` without matplotlib."""
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise PlotsUnavailable(
            f"--plots needs matplotlib, which is not installed ({exc}): pip install matplotlib "
            "(the project's `plot` extra)"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        written.append(directory / name)
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, result in results:
        for step in result["steps"]:
            ok = [r for r in step["requests"] if r["status"] == 200 and not r["error"]
                  and not r["disconnect"]]  # fmt: skip
            for ax, key in zip(axes, ("ttft", "e2e"), strict=True):
                values = sorted(r[key] for r in ok if r[key] is not None)
                if values:
                    ys = [(i + 1) / len(values) for i in range(len(values))]
                    ax.step(values, ys, where="post", label=f"{name} {step['summary']['label']}")
    for ax, title in zip(axes, ("time to first token (s)", "end to end (s)"), strict=True):
        ax.set_xlabel(title)
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    save(fig, "latency-cdf.png")

    sweeps = [(n, r) for n, r in results if len(r["steps"]) > 1]
    if sweeps:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for name, result in sweeps:
            xs = [_x(step) for step in result["steps"]]
            s = [step["summary"] for step in result["steps"]]
            axes[0].plot(xs, [x["output_tokens_per_s"] for x in s], "o-", label=name)
            axes[1].plot(xs, [x["ttft_s"]["p50"] for x in s], "o-", label=f"{name} p50")
            axes[1].plot(xs, [x["ttft_s"]["p99"] for x in s], "x--", label=f"{name} p99")
        axes[0].set_ylabel("output tokens/s")
        axes[1].set_ylabel("time to first token (s)")
        for ax in axes:
            ax.set_xlabel(_x_label(sweeps[0][1]))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        save(fig, "sweep.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    for name, result in results:
        for step in result["steps"]:
            pts = [(r["sent"], r["ttft"]) for r in step["requests"] if r["ttft"] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), ".", label=f"{name} {step['summary']['label']}")
    ax.set_xlabel("seconds since the step began (sent)")
    ax.set_ylabel("TTFT (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "ttft-over-time.png")
    return written


def _x(step: dict[str, Any]) -> float:
    return float(step["summary"]["label"].split("=", 1)[-1])


def _x_label(result: dict[str, Any]) -> str:
    label: str = result["steps"][0]["summary"]["label"]
    return label.split("=", 1)[0]
