"""The metrics during a load run, drawn: docs/metrics-load-run.png.

    pip install -e '.[plot]'          # matplotlib
    .venv/bin/python -m benchmarks.plot_metrics [--out docs/metrics-load-run.png]

Starts `trio-ollama serve` with 4 slots on the default model, then runs 8 clients for 20 s and
16 for 20 s (each sends greedy 64-token requests one after another), scraping `/metrics` every
half second with prometheus_client's parser. It plots what an operator's dashboard would show:
requests running and waiting, tokens streamed a second, the mean time to first token, queue wait
and inter-token gap over each interval, and the runner's resident set.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.serve import TrioOllama, counting

PHASES = ((8, 20.0), (16, 20.0))


def totals(text: str) -> dict[str, float]:
    """Every sample summed over its labels."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def load(url: str, clients: int, seconds: float, offset: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(i: int) -> None:
            n = 0
            while True:
                body = {"model": "smollm2:135m", "raw": True,
                        "prompt": counting(1 + 1000 * (offset + i) + 37 * n),
                        "options": {"num_predict": 64, "temperature": 0}}  # fmt: skip
                await client.post("/api/generate", json=body)
                n += 1

        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for i in range(clients):
                    nursery.start_soon(one, i)


async def run(url: str) -> list[tuple[float, dict[str, float]]]:
    series: list[tuple[float, dict[str, float]]] = []
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client, trio.open_nursery() as n:

        async def scrape() -> None:
            while True:
                text = (await client.get("/metrics")).text
                series.append((time.monotonic() - started, totals(text)))
                await trio.sleep(0.5)

        n.start_soon(scrape)
        offset = 0
        for clients, seconds in PHASES:
            await load(url, clients, seconds, offset)
            offset += clients
        await trio.sleep(2)
        n.cancel_scope.cancel()
    return series


def plot(series: list[tuple[float, dict[str, float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in series]

    def value(name: str) -> list[float]:
        return [s[1].get(name, 0.0) for s in series]

    def rate(name: str) -> list[float]:
        v = value(name)
        pairs = zip(v, v[1:], t, t[1:], strict=False)
        return [0.0] + [(b - a) / (t2 - t1) for a, b, t1, t2 in pairs]

    def window_mean(prefix: str) -> list[float]:
        sums, counts = value(prefix + "_sum"), value(prefix + "_count")
        means = [0.0]
        for i in range(1, len(series)):
            dc = counts[i] - counts[i - 1]
            means.append((sums[i] - sums[i - 1]) / dc if dc else float("nan"))
        return means

    fig, axes = plt.subplots(5, 1, figsize=(9, 12), sharex=True)
    axes[0].plot(t, value("trio_ollama_requests_running"), label="running")
    axes[0].plot(t, value("trio_ollama_requests_waiting"), label="waiting")
    axes[0].set_ylabel("requests")
    axes[0].legend(loc="upper left")
    # Per token, as they stream: a first token or a gap after one (generated_tokens_total grows
    # only when a request ends, in steps of a whole answer).
    first, later = (
        rate("trio_ollama_time_to_first_token_seconds_count"),
        rate("trio_ollama_inter_token_latency_seconds_count"),
    )
    axes[1].plot(t, [a + b for a, b in zip(first, later, strict=True)])
    axes[1].set_ylabel("tokens streamed/s")
    axes[2].plot(t, window_mean("trio_ollama_time_to_first_token_seconds"), ".", label="TTFT")
    axes[2].plot(t, window_mean("trio_ollama_queue_wait_seconds"), ".", label="queue wait")
    axes[2].set_ylabel("seconds (mean per 0.5 s)")
    axes[2].legend(loc="upper left")
    axes[3].plot(t, window_mean("trio_ollama_inter_token_latency_seconds"), ".")
    axes[3].set_ylabel("inter-token s (mean)")
    axes[4].plot(t, [v / 2**20 for v in value("trio_ollama_runner_resident_bytes")])
    axes[4].set_ylabel("runner RSS MiB")
    axes[4].set_xlabel("seconds: 8 clients, then 16, on 4 slots")
    fig.suptitle("trio-ollama /metrics during a load run (smollm2:135m, 2 CPUs)")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/metrics-load-run.png"))
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="plot-")) / "serve.log"
    server = TrioOllama(4, log)
    try:
        series = trio.run(run, server.url)
    finally:
        server.close()
    plot(series, args.out)
    print(f"{len(series)} scrapes; wrote {args.out}")


if __name__ == "__main__":
    main()
