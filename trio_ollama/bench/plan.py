"""The requests a spec describes, drawn once from its seed: the same spec gives the same requests,
in the same order, at the same times. A step is one value of a sweep (a concurrency or a rate).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from trio_ollama.bench.spec import Length, Spec, SpecError

Disconnect = Literal["", "queue", "prefill", "after_tokens"]

# Common English words: most tokenizers give each one token with its leading space, so a prompt
# of N words is about N tokens (the server's own prompt count is what results record).
WORDS = (
    "the", "of", "and", "to", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are",
    "with", "as", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by",
    "word", "but", "what", "some", "we", "can", "out", "other", "were", "all", "there", "when",
    "up", "use", "your", "how", "said", "an", "each", "she", "which", "do", "their", "time", "if",
    "will", "way", "about", "many", "then", "them", "write", "would", "like", "so", "these",
    "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more", "day", "could",
    "go", "come", "did", "number", "sound", "no", "most", "people", "my", "over", "know", "water",
    "than", "call", "first", "who", "may", "down", "side", "been", "now", "find",
)  # fmt: skip


@attrs.frozen
class Planned:
    index: int
    at: float  # seconds after the step's start (0 in a closed loop: workers take them in order)
    model: str
    prompt: str = ""
    messages: tuple[dict[str, Any], ...] = ()  # a chat trace's own messages, else the prompt
    max_tokens: int = 64
    disconnect: Disconnect = ""
    options: dict[str, Any] = attrs.field(factory=dict)
    priority: int | None = None  # sent as the request's `priority` (lower first)

    def to_json(self) -> dict[str, Any]:
        """A trace line (docs/benchmarks.md). Not a plain encoding: `messages` or else `prompt`,
        and `max_tokens` named `output_tokens`."""
        line: dict[str, Any] = {"at": self.at, "model": self.model}
        if self.messages:
            line["messages"] = list(self.messages)
        else:
            line["prompt"] = self.prompt
        line["output_tokens"] = self.max_tokens
        if self.disconnect:
            line["disconnect"] = self.disconnect
        if self.options:
            line["options"] = self.options
        if self.priority is not None:
            line["priority"] = self.priority
        return line


@attrs.frozen
class Step:
    label: str  # "concurrency=4", "rate=2", "trace"
    concurrency: int | None  # closed loop: the workers; otherwise None (as they arrive)
    requests: tuple[Planned, ...]


def steps(spec: Spec) -> Iterator[Step]:
    """Every step of the spec, each with its requests."""
    load = spec.load
    if load.mode == "trace":
        yield Step("trace", None, tuple(read_trace(Path(load.trace))))
    elif load.mode == "closed":
        for i, c in enumerate(load.concurrency):
            yield Step(f"concurrency={c}", c, tuple(_draw(spec, i, _closed(load.requests))))
    else:
        for i, rate in enumerate(load.rate):
            if load.mode == "open":
                times = _poisson(_rng(spec, i, "arrivals"), rate, load.requests)
            else:
                times = _bursts(_rng(spec, i, "arrivals"), rate, load.requests, load.on, load.off)
            yield Step(f"rate={rate:g}", None, tuple(_draw(spec, i, times)))


def _rng(spec: Spec, step: int, stream: str) -> random.Random:
    # Separate streams, so that changing the arrivals never changes the prompts.
    return random.Random(f"{spec.seed}:{step}:{stream}")


def _closed(n: int) -> list[float]:
    return [0.0] * n


def _poisson(rng: random.Random, rate: float, n: int) -> list[float]:
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out


def _bursts(rng: random.Random, rate: float, n: int, on: float, off: float) -> list[float]:
    """Poisson at `rate` while on; nothing while off: on-time folded onto the wall clock."""
    return [(t // on) * (on + off) + t % on for t in _poisson(rng, rate, n)]


def _draw(spec: Spec, step: int, times: list[float]) -> Iterator[Planned]:
    work = spec.workload
    rng = _rng(spec, step, "requests")
    prefix = _words(random.Random(f"{spec.seed}:prefix"), work.prefix_tokens)
    weights = [1.0] * len(work.models)
    if work.model_dist == "zipf":
        weights = [1 / (rank**work.zipf_s) for rank in range(1, len(work.models) + 1)]
    d = work.disconnect
    for index, at in enumerate(times):
        model = rng.choices(work.models, weights)[0]
        body = _words(rng, _length(rng, work.prompt_tokens))
        # The index keeps prompts apart: no request is served whole from another's cache.
        prompt = f"{index}: {body}"
        if rng.random() < work.shared_prefix:
            prompt = f"{prefix}\n{prompt}"
        u = rng.random()
        disconnect: Disconnect = ""
        if u < d.queue:
            disconnect = "queue"
        elif u < d.queue + d.prefill:
            disconnect = "prefill"
        elif u < d.queue + d.prefill + d.after_tokens:
            disconnect = "after_tokens"
        yield Planned(
            index=index, at=at, model=model, prompt=prompt,
            max_tokens=_length(rng, work.output_tokens), disconnect=disconnect,
            options=dict(work.options),
        )  # fmt: skip


def _length(rng: random.Random, length: Length) -> int:
    if length.dist == "uniform":
        return rng.randint(length.low, length.high)
    if length.dist == "lognormal":
        return max(1, round(rng.lognormvariate(math.log(length.value), length.sigma)))
    return length.value


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# ----- traces: JSON lines, one request each


def write_trace(requests: list[Planned] | tuple[Planned, ...], path: Path) -> None:
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in requests))


def read_trace(path: Path) -> list[Planned]:
    """A trace's requests: `at` (seconds), `model`, then `prompt`, `messages` or `prompt_tokens`
    (that many words), `output_tokens`, and optionally `options`, `disconnect` and
    `priority`."""
    out: list[Planned] = []
    rng = random.Random(f"trace:{path.name}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{where}: {exc}") from None
        if not isinstance(item, dict) or not isinstance(item.get("model"), str):
            raise SpecError(f"{where}: a JSON object with a model")
        at = item.get("at", 0.0)
        if not isinstance(at, int | float) or at < 0:
            raise SpecError(f"{where}: at: a time in seconds, not {at!r}")
        messages = item.get("messages") or ()
        prompt = item.get("prompt", "")
        if not messages and not prompt:
            prompt = _words(rng, int(item.get("prompt_tokens", 32)))
        disconnect = item.get("disconnect", "")
        if disconnect not in ("", "queue", "prefill", "after_tokens"):
            raise SpecError(f"{where}: disconnect: {disconnect!r}")
        priority = item.get("priority")
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise SpecError(f"{where}: priority: an integer, not {priority!r}")
        out.append(
            Planned(
                index=len(out),
                at=float(at),
                model=item["model"],
                prompt=str(prompt),
                messages=tuple(messages),
                max_tokens=int(item.get("output_tokens", 64)),
                disconnect=disconnect,
                options=dict(item.get("options") or {}),
                priority=priority,
            )
        )
    return sorted(out, key=lambda r: r.at)
