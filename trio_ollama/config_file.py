"""The TOML configuration file: scheduling policies server-wide and per model (docs/policies.md).

Its path comes from `TRIO_OLLAMA_CONFIG` or `serve --config`. Unlike the `OLLAMA_*` variables,
which fall back to a default with a warning as Ollama does, a file is checked strictly: an
unknown key, a wrong type or an impossible value stops the server at start-up, naming the file,
the key and the reason. Without a file every policy is Ollama's behaviour.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from trio_ollama.gocompat.durations import DurationError, ns_to_seconds, parse_go_duration_ns
from trio_ollama.names import parse_name

CONFIG_VARIABLE = "TRIO_OLLAMA_CONFIG"
Eviction = Literal["ollama", "cost"]
EVICTIONS: tuple[Eviction, ...] = ("ollama", "cost")
# Waiting this long is worth one priority level (docs/policies.md has the bound it gives).
DEFAULT_PRIORITY_AGING = 10.0
MIN_PRIORITY_AGING = 0.001
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9

# `[server]` keys that stand for an `OLLAMA_*` variable; a variable that is set wins.
SERVER_VARIABLES = {
    "num_parallel": "OLLAMA_NUM_PARALLEL",
    "max_loaded_models": "OLLAMA_MAX_LOADED_MODELS",
    "max_queue": "OLLAMA_MAX_QUEUE",
    "keep_alive": "OLLAMA_KEEP_ALIVE",
    "context_length": "OLLAMA_CONTEXT_LENGTH",
}


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


@attrs.frozen(kw_only=True)
class ModelPolicy:
    """What applies to one model; None: the server-wide setting."""

    num_parallel: int | None = None
    keep_alive: float | None = None  # seconds; math.inf: forever
    max_queue: int | None = None  # requests waiting for this model at most
    pinned: bool = False  # never evicted for another model; kept loaded
    preload: bool = False  # loaded at start-up, and again after a crash
    priority: int = 0  # for requests that name none; lower runs first


def _by_policy_name(models: Mapping[str, ModelPolicy]) -> Mapping[str, ModelPolicy]:
    return {policy_name(name): p for name, p in models.items()}


@attrs.frozen(kw_only=True)
class Policies:
    """The scheduling policies in force; the defaults are Ollama's behaviour."""

    fair_queues: bool = False
    eviction: Eviction = "ollama"
    priority_aging: float = DEFAULT_PRIORITY_AGING  # seconds per priority level; inf: none
    models: Mapping[str, ModelPolicy] = attrs.field(factory=dict, converter=_by_policy_name)
    source: str = ""  # the file they came from, for messages

    def for_model(self, name: str) -> ModelPolicy:
        return self.models.get(policy_name(name), _DEFAULT_MODEL)

    @property
    def preloads(self) -> tuple[str, ...]:
        return tuple(name for name, p in self.models.items() if p.preload)


_DEFAULT_MODEL = ModelPolicy()


def policy_name(name: str) -> str:
    """One spelling per model: `smollm2` and `smollm2:latest` are the same section."""
    parsed = parse_name(name)
    return parsed.display_shortest if parsed.is_valid else name


@attrs.frozen
class ConfigFile:
    policies: Policies
    # `[server]` settings as the `OLLAMA_*` variables they stand for.
    variables: Mapping[str, str]


def load_config_file(path: Path) -> ConfigFile:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not TOML: {exc}") from None
    try:
        return config_from(data, source=str(path))
    except ConfigFileError as exc:
        raise ConfigFileError(f"{path}: {exc}") from None


def config_from(data: Mapping[str, Any], source: str = "") -> ConfigFile:
    """Check and build; errors name the key (the caller adds the file)."""
    _known(data, "", {"server", "scheduler", "models"})
    server = _table(data.get("server", {}), "server")
    _known(server, "server.", set(SERVER_VARIABLES))
    variables: dict[str, str] = {}
    for key, value in server.items():
        where = f"server.{key}"
        if key == "keep_alive":
            seconds = parse_duration(value, where)
            # Whole nanoseconds, which the variable's Go-duration parser reads back exactly.
            variables[SERVER_VARIABLES[key]] = (
                "-1" if math.isinf(seconds) else f"{round(seconds * 1e9)}ns"
            )
        else:
            minimum = 1 if key == "context_length" else 0
            variables[SERVER_VARIABLES[key]] = str(_count(value, where, minimum=minimum))
    sched = _table(data.get("scheduler", {}), "scheduler")
    _known(sched, "scheduler.", {"fair_queues", "eviction", "priority_aging"})
    eviction = sched.get("eviction", "ollama")
    if eviction not in EVICTIONS:
        raise ConfigFileError(
            f"scheduler.eviction: {eviction!r} is not one of {', '.join(EVICTIONS)}"
        )
    aging = DEFAULT_PRIORITY_AGING
    if "priority_aging" in sched:
        aging = parse_duration(sched["priority_aging"], "scheduler.priority_aging")
        if aging < MIN_PRIORITY_AGING:
            raise ConfigFileError(
                f"scheduler.priority_aging: {sched['priority_aging']!r} is under "
                f"{MIN_PRIORITY_AGING * 1000:g} ms, which would make priorities meaningless; "
                "a negative value turns aging off"
            )
    models: dict[str, ModelPolicy] = {}
    for name, section in _table(data.get("models", {}), "models").items():
        if not parse_name(name).is_valid:
            raise ConfigFileError(f"models.{name}: not a valid model name")
        key = policy_name(name)
        if key in models:
            raise ConfigFileError(f"models.{name}: the same model as another section")
        models[key] = _model(section, f"models.{name}")
    return ConfigFile(
        Policies(
            fair_queues=_bool(sched, "fair_queues", "scheduler."),
            eviction=eviction,
            priority_aging=aging,
            models=models,
            source=source,
        ),
        variables,
    )


def _model(value: Any, where: str) -> ModelPolicy:
    section = _table(value, where)
    for key, item in section.items():
        if isinstance(item, Mapping):  # [models.llama3.2] is a table "2" inside "llama3"
            raise ConfigFileError(
                f'{where}.{key}: a model name with a dot must be quoted: [models."name.{key}"]'
            )
    _known(section, where + ".", set(attrs.fields_dict(ModelPolicy)))
    num_parallel, max_queue = section.get("num_parallel"), section.get("max_queue")
    keep_alive = section.get("keep_alive")
    w = where + "."
    priority = section.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ConfigFileError(f"{where}.priority: {priority!r} is not an integer")
    if keep_alive is not None and section.get("pinned") is True:
        raise ConfigFileError(
            f"{where}.keep_alive: a pinned model stays loaded; keep_alive would not apply"
        )
    return ModelPolicy(
        num_parallel=None if num_parallel is None else _count(num_parallel, w + "num_parallel"),
        keep_alive=None if keep_alive is None else parse_duration(keep_alive, w + "keep_alive"),
        max_queue=None if max_queue is None else _count(max_queue, w + "max_queue"),
        pinned=_bool(section, "pinned", w),
        preload=_bool(section, "preload", w),
        priority=priority,
    )  # fmt: skip


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a number of seconds or a Go duration ("5m", "1h30m"); negative: forever."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = ns_to_seconds(parse_go_duration_ns(value))
        except DurationError:
            raise ConfigFileError(f'{where}: {value!r} is not a duration ("5m", "1h", 300)') from (
                None
            )
    else:
        raise ConfigFileError(f"{where}: {value!r} is not a duration")
    if math.isnan(seconds):
        raise ConfigFileError(f"{where}: {value!r} is not a duration")
    if seconds > MAX_DURATION_SECONDS:
        raise ConfigFileError(
            f"{where}: {value!r} is longer than Go's longest duration (292 years)"
        )
    return math.inf if seconds < 0 else seconds


def _count(value: Any, where: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigFileError(f"{where}: {value!r} is not an integer >= {minimum}")
    return value


def _bool(data: Mapping[str, Any], key: str, prefix: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ConfigFileError(f"{prefix}{key}: {value!r} is not true or false")
    return value


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigFileError(f"{where}: a table of keys, not {value!r}")
    return value


def _known(data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigFileError(
            f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})"
        )
