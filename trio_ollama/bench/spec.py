"""A benchmark described: the target, how load arrives, what the requests are, and the seed.

Read from TOML or JSON (docs/benchmarks.md has every key) or built in code. Values are
checked here, at the boundary, with the key named in the error; inside, they are trusted.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

Api = Literal["generate", "chat", "openai-chat", "openai-completions"]
Mode = Literal["closed", "open", "bursts", "trace"]
APIS: tuple[Api, ...] = ("generate", "chat", "openai-chat", "openai-completions")
MODES: tuple[Mode, ...] = ("closed", "open", "bursts", "trace")


DEFAULT_TARGET = "http://127.0.0.1:11434"
DEFAULT_MODEL = "smollm2:135m"


class SpecError(ValueError):
    """A spec that cannot run; the message names the key."""


@attrs.frozen
class Length:
    """A token count drawn per request: fixed, uniform in [low, high], or log-normal (the
    median `value`, spread `sigma`), never below 1."""

    dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    value: int = 32
    low: int = 1
    high: int = 1
    sigma: float = 0.5


@attrs.frozen
class Disconnects:
    """Fractions of requests whose client hangs up: while queued (before any answer, `queue_s`
    after sending), during prompt processing (`prefill_s` after sending, if no token came yet),
    or after `after_k` tokens."""

    queue: float = 0.0
    prefill: float = 0.0
    after_tokens: float = 0.0
    queue_s: float = 0.05
    prefill_s: float = 0.5
    after_k: int = 8


@attrs.frozen
class Workload:
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    model_dist: Literal["uniform", "zipf"] = "uniform"
    zipf_s: float = 1.1
    prompt_tokens: Length = Length(value=32)
    output_tokens: Length = Length(value=64)
    shared_prefix: float = 0.0  # the fraction of requests whose prompt starts with one prefix
    prefix_tokens: int = 256
    disconnect: Disconnects = Disconnects()
    options: Mapping[str, Any] = attrs.field(factory=dict)  # sent as they are (temperature...)


@attrs.frozen
class Load:
    mode: Mode = "closed"
    concurrency: tuple[int, ...] = (1,)  # closed: one step per value (a sweep)
    rate: tuple[float, ...] = (1.0,)  # open and bursts: requests a second, one step per value
    requests: int = 16  # per step; with `duration`, whichever ends first
    duration: float = 0.0  # seconds per step; 0: no limit
    on: float = 5.0  # bursts: seconds sending at `rate`, then `off` seconds silent
    off: float = 5.0
    trace: str = ""  # trace: a JSON lines file (docs/benchmarks.md)


@attrs.frozen
class Slo:
    """The objective behind goodput: a request counts if it met both."""

    ttft: float = 2.0
    tpot: float = 0.2  # mean seconds per output token after the first


@attrs.frozen
class Spec:
    target: str = DEFAULT_TARGET
    api: Api = "generate"
    seed: int = 0
    load: Load = Load()
    workload: Workload = Workload()
    slo: Slo = Slo()
    timeout: float = 600.0
    # Reuse connections between requests. llama-server closes kept-alive connections at times
    # (the next request on one fails before it is sent): false opens one per request.
    keepalive: bool = True

    def to_json(self) -> dict[str, Any]:
        # The spec in the result file, key for key as `load_spec` reads it (not a Go type).
        return attrs.asdict(self, recurse=True, value_serializer=_plain)


def _plain(_: Any, __: Any, value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def load_spec(path: Path, overrides: Mapping[str, Any] | None = None) -> Spec:
    """A spec from a TOML (`.toml`) or JSON file; `overrides` are dotted keys ("load.mode")."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from None
    for dotted, value in (overrides or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    try:
        return spec_from(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def spec_from(data: Mapping[str, Any]) -> Spec:
    """Check and build: unknown keys, wrong types and impossible values are refused."""
    top = _fields(
        data, "", {"target", "api", "seed", "load", "workload", "slo", "timeout", "keepalive"}
    )
    api = _choice(top, "api", APIS, "generate")
    target = str(top.get("target", DEFAULT_TARGET)).rstrip("/")
    if not target.startswith(("http://", "https://")):
        raise SpecError(f"target: {target!r} is not an http:// or https:// URL")
    load = _fields(top.get("load", {}), "load.", set(attrs.fields_dict(Load)))
    mode = _choice(load, "mode", MODES, "closed", "load.")
    built_load = Load(
        mode=mode,
        concurrency=_list(load, "concurrency", int, (1,), "load.", minimum=1),
        rate=_list(load, "rate", float, (1.0,), "load.", minimum=1e-6),
        requests=_number(load, "requests", int, 16, "load.", minimum=1),
        duration=_number(load, "duration", float, 0.0, "load.", minimum=0),
        on=_number(load, "on", float, 5.0, "load.", minimum=1e-3),
        off=_number(load, "off", float, 5.0, "load.", minimum=0),
        trace=str(load.get("trace", "")),
    )
    if mode == "trace" and not built_load.trace:
        raise SpecError("load.trace: mode 'trace' needs a trace file")
    work = _fields(top.get("workload", {}), "workload.", set(attrs.fields_dict(Workload)))
    models = work.get("models", [DEFAULT_MODEL])
    if isinstance(models, str):
        models = [models]
    if not models or not all(isinstance(m, str) and m for m in models):
        raise SpecError("workload.models: a list of model names")
    disconnect = _fields(
        work.get("disconnect", {}), "workload.disconnect.", set(attrs.fields_dict(Disconnects))
    )
    fractions = {
        key: _number(disconnect, key, float, 0.0, "workload.disconnect.", minimum=0, maximum=1)
        for key in ("queue", "prefill", "after_tokens")
    }
    if sum(fractions.values()) > 1:
        raise SpecError("workload.disconnect: the fractions add up to more than 1")
    options = work.get("options", {})
    if not isinstance(options, Mapping):
        raise SpecError("workload.options: a table of options")
    built_work = Workload(
        models=tuple(models),
        model_dist=_choice(work, "model_dist", ("uniform", "zipf"), "uniform", "workload."),
        zipf_s=_number(work, "zipf_s", float, 1.1, "workload.", minimum=1e-6),
        prompt_tokens=_length(work.get("prompt_tokens", 32), "workload.prompt_tokens"),
        output_tokens=_length(work.get("output_tokens", 64), "workload.output_tokens"),
        shared_prefix=_number(work, "shared_prefix", float, 0.0, "workload.", 0, 1),
        prefix_tokens=_number(work, "prefix_tokens", int, 256, "workload.", minimum=1),
        disconnect=Disconnects(
            **fractions,
            queue_s=_number(disconnect, "queue_s", float, 0.05, "workload.disconnect.", 0),
            prefill_s=_number(disconnect, "prefill_s", float, 0.5, "workload.disconnect.", 0),
            after_k=_number(disconnect, "after_k", int, 8, "workload.disconnect.", minimum=1),
        ),
        options=dict(options),
    )
    slo = _fields(top.get("slo", {}), "slo.", {"ttft", "tpot"})
    return Spec(
        target=target,
        api=api,
        seed=_number(top, "seed", int, 0, ""),
        load=built_load,
        workload=built_work,
        slo=Slo(
            ttft=_number(slo, "ttft", float, 2.0, "slo.", minimum=0),
            tpot=_number(slo, "tpot", float, 0.2, "slo.", minimum=0),
        ),
        timeout=_number(top, "timeout", float, 600.0, "", minimum=1e-3),
        keepalive=_bool(top, "keepalive", True),
    )


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{key}: {value!r} is not true or false")
    return value


def _fields(value: Any, prefix: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{prefix.rstrip('.') or 'spec'}: a table of keys")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SpecError(f"{prefix}{unknown[0]}: unknown key")
    return value


def _choice(data: Mapping[str, Any], key: str, choices: tuple[Any, ...], default: Any,
            prefix: str = "") -> Any:  # fmt: skip
    value = data.get(key, default)
    if value not in choices:
        raise SpecError(f"{prefix}{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _number(
    data: Mapping[str, Any], key: str, kind: type, default: Any, prefix: str,
    minimum: float | None = None, maximum: float | None = None,
) -> Any:  # fmt: skip
    value = data.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise SpecError(
            f"{prefix}{key}: {value!r} is not a{'n integer' if kind is int else ' number'}"
        )
    if minimum is not None and value < minimum:
        raise SpecError(f"{prefix}{key}: {value} is below {minimum:g}")
    if maximum is not None and value > maximum:
        raise SpecError(f"{prefix}{key}: {value} is above {maximum:g}")
    return kind(value)


def _list(
    data: Mapping[str, Any], key: str, kind: type, default: tuple[Any, ...], prefix: str,
    minimum: float,
) -> tuple[Any, ...]:  # fmt: skip
    value = data.get(key, list(default))
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"{prefix}{key}: empty")
    return tuple(_number({key: v}, key, kind, None, prefix, minimum) for v in values)


def _length(value: Any, name: str) -> Length:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError(f"{name}: {value} is below 1")
        return Length(value=value)
    table = _fields(value, name + ".", {"dist", "value", "low", "high", "sigma"})
    dist = _choice(table, "dist", ("fixed", "uniform", "lognormal"), "fixed", name + ".")
    length = Length(
        dist=dist,
        value=_number(table, "value", int, 32, name + ".", minimum=1),
        low=_number(table, "low", int, 1, name + ".", minimum=1),
        high=_number(table, "high", int, 1, name + ".", minimum=1),
        sigma=_number(table, "sigma", float, 0.5, name + ".", minimum=0),
    )
    if dist == "uniform" and length.high < length.low:
        raise SpecError(f"{name}.high: {length.high} is below low ({length.low})")
    return length
