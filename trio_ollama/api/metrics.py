"""Prometheus metrics for `GET /metrics`, made with `prometheus_client` (docs/metrics.md).

Counters and histograms are updated as things happen: by the HTTP layer (a request answered),
by the service (tokens, time to first token, gaps between tokens) and by the scheduler, whose
`SchedulerEvents` this implements (waits, loads, unloads, refusals). Gauges that are a state
(requests running and waiting, slots, runners, memory) are read from the scheduler at scrape
time, so they can never drift from it.

Labels stay bounded: `model` is a stored model's name (or "" before one is known: a name a
client made up never becomes a label), `endpoint` a route template, never a raw path. A deleted
model's series go with it (`deleted`), so that models created and deleted by the thousand leave
no trace here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trio_ollama.scheduler import Scheduler
from trio_ollama.scheduler.types import RejectReason, UnloadReason

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
# Seconds, from a cached prompt's few milliseconds to a cold load or a long generation.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Seconds between two tokens of one stream.
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """Every metric of one server, in a registry of its own (two servers in one process, as in
    tests, never share counts)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = prometheus_client.CollectorRegistry()
        r = self.registry
        self.requests = prometheus_client.Counter(
            "trio_ollama_requests", "HTTP requests answered, by model, route and status.",
            ["model", "endpoint", "status"], registry=r,
        )  # fmt: skip
        self.refusals = prometheus_client.Counter(
            "trio_ollama_requests_rejected",
            "Requests refused: the queue was full, the model would not load, or the request "
            "was bad (a 4xx other than an unknown model).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.duration = prometheus_client.Histogram(
            "trio_ollama_request_duration_seconds",
            "From the request's arrival to the last byte of its answer.",
            ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_wait = prometheus_client.Histogram(
            "trio_ollama_queue_wait_seconds",
            "Time a request waited for a runner slot, a load included.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.load_duration = prometheus_client.Histogram(
            "trio_ollama_load_duration_seconds", "Time to load a runner, failed loads included.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = prometheus_client.Histogram(
            "trio_ollama_time_to_first_token_seconds",
            "From a generation's arrival to its first token.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.itl = prometheus_client.Histogram(
            "trio_ollama_inter_token_latency_seconds", "Time between two tokens of one stream.",
            ["model"], buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.prompt_tokens = prometheus_client.Counter(
            "trio_ollama_prompt_tokens", "Prompt tokens, cached ones included.", ["model"],
            registry=r,
        )  # fmt: skip
        self.prompt_tokens_cached = prometheus_client.Counter(
            "trio_ollama_prompt_tokens_cached",
            "Prompt tokens found in a slot's cache, not processed again.", ["model"], registry=r,
        )  # fmt: skip
        self.generated_tokens = prometheus_client.Counter(
            "trio_ollama_generated_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.loads = prometheus_client.Counter(
            "trio_ollama_loads", "Runner loads, by model and result (ok, failed).",
            ["model", "result"], registry=r,
        )  # fmt: skip
        self.unloads = prometheus_client.Counter(
            "trio_ollama_unloads",
            "Runner unloads, by model and reason: keep_alive, evicted_memory, "
            "evicted_max_models, reload, crashed, requested, shutdown.",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        prometheus_client.ProcessCollector(registry=r)
        prometheus_client.PlatformCollector(registry=r)
        prometheus_client.GCCollector(registry=r)
        self._by_model = [
            self.requests, self.duration, self.queue_wait, self.load_duration, self.ttft,
            self.itl, self.prompt_tokens, self.prompt_tokens_cached, self.generated_tokens,
            self.loads, self.unloads,
        ]  # fmt: skip
        self._scheduler: Scheduler | None = None
        # Deleted models that were still in use when deleted: their series go when the last
        # runner of theirs unloads.
        self._deleted: set[str] = set()

    def watch(self, scheduler: Scheduler) -> None:
        """Read the scheduler's state at each scrape."""
        self._scheduler = scheduler
        self.registry.register(_SchedulerState(scheduler))

    # ----- the store's changes

    def deleted(self, model: str) -> None:
        """`model` (a stored name) was deleted: its series go. A delete does not unload (as in
        Ollama): if a runner of it is still loaded, its series go when that runner unloads, its
        last requests and its unload counted until then."""
        if self._in_use(model):
            self._deleted.add(model)
        else:
            self._forget(model)

    def created(self, model: str) -> None:
        """`model` names a stored model again: its series stay when an old runner unloads."""
        self._deleted.discard(model)

    def _forget(self, model: str) -> None:
        self._deleted.discard(model)
        for metric in self._by_model:
            metric.remove_by_labels({"model": model})

    def _in_use(self, model: str) -> bool:
        """Whether a runner of `model` is loaded or loading, or a request waits for one."""
        s = self._scheduler
        if s is None:
            return False
        loaded = any(r.model.name == model for r in s.loaded.values())
        return loaded or model in s.key_names.values()

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)

    # ----- the scheduler's events (SchedulerEvents)

    def waited(self, model: str, seconds: float) -> None:
        if self.enabled:
            self.queue_wait.labels(model).observe(seconds)

    def loaded(self, model: str, seconds: float, ok: bool) -> None:
        if self.enabled:
            self.loads.labels(model, "ok" if ok else "failed").inc()
            self.load_duration.labels(model).observe(seconds)

    def unloaded(self, model: str, reason: UnloadReason) -> None:
        if self.enabled:
            self.unloads.labels(model, reason).inc()
        if model in self._deleted and not self._in_use(model):
            self._forget(model)

    def rejected(self, reason: RejectReason) -> None:
        if self.enabled:
            self.refusals.labels(reason).inc()

    # ----- the HTTP layer and the service

    def answered(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        if self.enabled:
            self.requests.labels(model, endpoint, str(status)).inc()
            self.duration.labels(model, endpoint).observe(seconds)
            if 400 <= status < 500 and status != 404:
                self.refusals.labels("bad_request").inc()

    def generated(self, model: str, prompt: int, cached: int, generated: int) -> None:
        if self.enabled:
            self.prompt_tokens.labels(model).inc(prompt)
            self.prompt_tokens_cached.labels(model).inc(cached)
            self.generated_tokens.labels(model).inc(generated)

    def first_token(self, model: str, seconds: float) -> None:
        if self.enabled:
            self.ttft.labels(model).observe(seconds)

    def between_tokens(self, model: str, seconds: float) -> None:
        if self.enabled:
            self.itl.labels(model).observe(seconds)


class _SchedulerState(Collector):
    """Gauges read from the scheduler when scraped."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        s = self.scheduler
        running = GaugeMetricFamily(
            "trio_ollama_requests_running", "Requests holding a runner slot now.", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "trio_ollama_requests_waiting",
            "Requests waiting now: for a load (the pending queue) or for a loaded runner's slot.",
            labels=["model"],
        )
        loaded = GaugeMetricFamily("trio_ollama_runners_loaded", "Runners loaded now.")
        slots = GaugeMetricFamily(
            "trio_ollama_slots", "Runner slots (num_parallel), by state: in_use or total.",
            labels=["model", "state"],
        )  # fmt: skip
        memory = GaugeMetricFamily(
            "trio_ollama_runner_memory_bytes",
            "Memory a runner reported allocating, by kind: weights, kv, compute.",
            labels=["model", "kind"],
        )
        resident = GaugeMetricFamily(
            "trio_ollama_runner_resident_bytes", "A runner process's resident set.",
            labels=["model"],
        )  # fmt: skip
        runners = s.running()
        # One runner per key, named as it was loaded; waiters by key, under that runner's name
        # (or their own, for a model not loaded yet). Two runners with one name (a model
        # re-created while loaded) are summed, so that no series appears twice.
        names = dict(s.key_names)
        names.update({r.model.key: r.model.name for r in runners})
        sums: dict[str, dict[tuple[str, ...], float]] = {}

        def add(family: str, labels: tuple[str, ...], value: float) -> None:
            series = sums.setdefault(family, {})
            series[labels] = series.get(labels, 0) + value

        for runner in runners:
            name = runner.model.name
            add("running", (name,), runner.refcount)
            add("slots", (name, "in_use"), runner.refcount)
            add("slots", (name, "total"), runner.num_parallel)
            if runner.ready is not None:
                add("memory", (name, "weights"), runner.ready.weights_bytes)
                add("memory", (name, "kv"), runner.ready.kv_bytes)
                add("memory", (name, "compute"), runner.ready.compute_bytes)
            pid = runner.client.pid if runner.client is not None else None
            rss = _resident(pid) if pid is not None else None
            if rss is not None:
                add("resident", (name,), rss)
        for key, count in s.waiting_by_key.items():
            add("waiting", (names.get(key, key),), count)
        # Every model with either has both, so that a dashboard sees a 0, not a gap.
        for name in {labels[0] for f in ("running", "waiting") for labels in sums.get(f, {})}:
            add("running", (name,), 0)
            add("waiting", (name,), 0)
        families = {"running": running, "waiting": waiting, "slots": slots, "memory": memory,
                    "resident": resident}  # fmt: skip
        for family, series in sums.items():
            for labels, value in series.items():
                families[family].add_metric(list(labels), value)
        loaded.add_metric([], len(runners))
        yield from (running, waiting, loaded, slots, memory, resident)


def _resident(pid: int) -> float | None:
    # /proc is answered by the kernel from memory: microseconds, no disk, fine on the loop.
    try:
        text = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None  # gone between the listing and the read
    return float(int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE"))
