"""Scheduling decisions as pure functions of the scheduler's state: no Trio, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

import attrs

from trio_ollama.gocompat.durations import keep_alive_seconds
from trio_ollama.runner.protocol import RunnerOptions
from trio_ollama.scheduler.types import ModelSpec


class RunnerView(Protocol):
    """What the policies read of a loaded runner."""

    @property
    def model(self) -> ModelSpec: ...
    @property
    def options(self) -> RunnerOptions: ...
    @property
    def refcount(self) -> int: ...
    @property
    def keep_alive(self) -> float: ...
    @property
    def dead(self) -> bool: ...
    @property
    def last_used(self) -> float: ...
    @property
    def recency(self) -> int: ...
    @property
    def pinned(self) -> bool: ...
    @property
    def loaded_at(self) -> float: ...
    @property
    def load_seconds(self) -> float: ...
    @property
    def uses(self) -> int: ...


_R = TypeVar("_R", bound=RunnerView)


def needs_reload(runner: RunnerView, model: ModelSpec, options: RunnerOptions) -> bool:
    """Ollama's `needsReload`: different adapters, projectors or runner options, or a dead runner.

    `num_gpu < 0` (automatic) in the request accepts whatever the runner was loaded with.
    """
    if runner.dead:
        return True
    if runner.model.adapters != model.adapters or runner.model.projectors != model.projectors:
        return True
    wanted = options
    if wanted.num_gpu < 0:
        wanted = attrs.evolve(wanted, num_gpu=runner.options.num_gpu)
    return wanted != runner.options


def find_runner_to_unload(runners: Sequence[_R]) -> _R | None:
    """An idle runner if there is one, else the one whose keep-alive is shortest.

    Sorted by keep-alive, then least recently used: among equal keep-alives the one that has
    waited longest goes first (Ollama sorts by model path there; recency is the better tie-break;
    `recency` orders uses within one instant, as virtual time has many).
    Pinned runners are never chosen.
    """
    candidates = [r for r in runners if not r.pinned]
    ordered = sorted(candidates, key=lambda r: (r.keep_alive, r.last_used, r.recency))
    for runner in ordered:
        if runner.refcount == 0:
            return runner
    return ordered[0] if ordered else None


def find_runner_to_unload_by_cost(runners: Sequence[_R], now: float) -> _R | None:
    """The runner whose eviction costs least: its load time times the odds it is wanted again.

    The odds come from its own history: a model asked for every `gap` seconds on average, idle
    for `idle` seconds, is wanted again soon with odds 1 / (1 + idle / gap). A model used often
    and lately is kept; an expensive one outlives cheap ones used as often; one gone quiet for
    many of its gaps is worth little, however dear its load. Idle runners go before busy ones
    (evicting a busy one means waiting for it to drain), as in Ollama's rule; recency breaks
    ties. Pinned runners are never chosen.
    """
    candidates = [r for r in runners if not r.pinned]
    if not candidates:
        return None
    return min(
        candidates, key=lambda r: (r.refcount > 0, reload_cost(r, now), r.last_used, r.recency)
    )


# What a model's mean gap between requests is taken to be before it has one: one use, one minute.
PRIOR_GAP_SECONDS = 60.0


def reload_cost(runner: RunnerView, now: float) -> float:
    """Expected seconds of loading that evicting `runner` brings back (see above). The gap is
    the time its uses spanned, plus a prior minute, over its uses; the idle time after the last
    use is not part of it, so the odds fall without bound as it stays idle."""
    span = max(runner.last_used - runner.loaded_at, 0.0)
    gap = (span + PRIOR_GAP_SECONDS) / max(runner.uses, 1)
    idle = max(now - runner.last_used, 0.0) if runner.refcount == 0 else 0.0
    return runner.load_seconds / (1.0 + idle / gap)


def queue_key(priority: int, arrival: float, aging: float) -> tuple[float, float]:
    """Where a waiting request stands; the lowest key is served first.

    Lower priority values first, then arrival. With aging, `aging` seconds of waiting are worth
    one priority level: a request keyed `priority * aging + arrival` never changes place while
    it waits, and one of priority p is served before any request of priority q that arrives
    more than (p - q) * aging seconds after it. That bounds how long a flood of more urgent
    requests can hold it back. All priorities equal (the default): arrival order, as Ollama.
    """
    if math.isinf(aging):
        return float(priority), arrival
    return priority * aging + arrival, arrival


def resolve_keep_alive(requested: float | None, current: float | None, default: float) -> float:
    """The request's keep-alive, else the runner's current one, else OLLAMA_KEEP_ALIVE.

    Negative means forever (`math.inf`); zero means unload when the last request leaves.
    """
    value = requested if requested is not None else current if current is not None else default
    return keep_alive_seconds(value)


def thread_shares(cores: int, busy: Sequence[str]) -> dict[str, int]:
    """Split `cores` among runners decoding at the same moment; one alone gets them all.

    Two runners with 2 threads each on 2 cores ran at 43 tok/s combined here, against 144 with
    one thread each: oversubscribed cores collapse, so the total never exceeds the cores.
    """
    if not busy:
        return {}
    share, extra = divmod(max(cores, 1), len(busy))
    return {key: max(1, share + (1 if i < extra else 0)) for i, key in enumerate(sorted(busy))}
