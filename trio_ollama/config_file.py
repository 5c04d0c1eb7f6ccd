"""The TOML configuration file: scheduling policies server-wide and per model (docs/policies.md).

Its path comes from `TRIO_OLLAMA_CONFIG` or `serve --config`. Unlike the `OLLAMA_*` variables,
which fall back to a default with a warning as Ollama does, a file is checked strictly: an
unknown key, a wrong type or an impossible value stops the server at start-up, naming the file,
the key and the reason. Without a file every policy is Ollama's behaviour.

The file is input like a request body: whatever the path names (a FIFO, `/dev/zero`, a disk
image, bytes that are not UTF-8, arrays nested past the parser's stack) is refused the same way,
never with a traceback or a hang.
"""

from __future__ import annotations

import math
import os
import reprlib
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from trio_ollama.gocompat.decode import INT32_MAX
from trio_ollama.gocompat.durations import (
    MAX_DURATION_SECONDS,
    DurationError,
    keep_alive_seconds,
    parse_keep_alive_duration,
)
from trio_ollama.names import parse_name

CONFIG_VARIABLE = "TRIO_OLLAMA_CONFIG"
Eviction = Literal["ollama", "cost"]
EVICTIONS: tuple[Eviction, ...] = ("ollama", "cost")
# Waiting this long is worth one priority level (docs/policies.md has the bound it gives).
DEFAULT_PRIORITY_AGING = 10.0
MIN_PRIORITY_AGING = 0.001
# A real file is a few hundred bytes. The bound keeps a mistyped path (a disk image, a log)
# from being read whole into memory before it is refused, and caps the parse: tomllib took
# 0.6 s for 256 KiB of sections here.
MAX_CONFIG_BYTES = 1 << 18
# tomllib's time grows with the square of a dotted key's length: a 100,000-part `a.a.a...` key,
# 200 KB, would take minutes. A real file has a few dots (model names, "1.5s"); 2,048 parts
# take 0.15 s.
MAX_CONFIG_DOTS = 2048
# llama.cpp's LLAMA_MAX_SEQ (`llama_max_parallel_sequences()`): it refuses a context with more.
MAX_PARALLEL = 256


@attrs.frozen(kw_only=True)
class Count:
    """The values an integer setting may take, in the file and in the `OLLAMA_*` variable it
    stands for alike (config.py checks the variables against this same table)."""

    variable: str
    minimum: int
    maximum: int
    beyond: str  # why a value over the maximum cannot work


# `[server]` integer settings. Each range holds the values that work, so that no value the file
# accepts fails later, at the first request (a queue of 0 would answer every request 503; 2**63-1
# slots would ask for more memory than any machine has).
COUNTS: Mapping[str, Count] = {
    "num_parallel": Count(
        variable="OLLAMA_NUM_PARALLEL",
        minimum=0,  # Ollama's "automatic", which is 1 (`effective_num_parallel`)
        maximum=MAX_PARALLEL,
        beyond="the most sequences llama.cpp runs in one context",
    ),
    "max_loaded_models": Count(
        variable="OLLAMA_MAX_LOADED_MODELS",
        minimum=0,  # automatic: three per GPU (`max_runners`)
        maximum=1024,
        beyond="each is a runner process with its own model: memory runs out long before",
    ),
    "max_queue": Count(
        variable="OLLAMA_MAX_QUEUE",
        minimum=1,
        maximum=1 << 20,  # Linux's default ceiling on one process's open files (nr_open)
        beyond="more waiting requests than one process can hold connections for",
    ),
    "context_length": Count(
        variable="OLLAMA_CONTEXT_LENGTH",
        minimum=1,
        maximum=INT32_MAX,  # num_ctx's own bound (options.py)
        beyond="the largest context llama.cpp takes (a C int)",
    ),
}
# `[server]` keys that stand for an `OLLAMA_*` variable; a variable that is set wins.
SERVER_VARIABLES = {
    **{key: count.variable for key, count in COUNTS.items()},
    "keep_alive": "OLLAMA_KEEP_ALIVE",
}

# Values quoted in messages: a hostile file's 1 MB string or deep array is shown in brief.
_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 60
_shown.maxlevel = 3


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


@attrs.frozen(kw_only=True)
class ConfigFile:
    policies: Policies
    # `[server]`, checked: each count by the `OLLAMA_*` variable it stands for, and keep_alive in
    # seconds (math.inf: forever). Settings take them as they are, with no text in between (the
    # simulator too: `Settings.from_env(env, config=...)`).
    counts: Mapping[str, int] = attrs.field(factory=dict)
    keep_alive: float | None = None


def read_config_text(path: Path) -> str:
    """The file's text, read so that no path can hang the server or fill its memory: a FIFO
    would block an ordinary open until a writer came, `/dev/zero` would never end. Opened
    without blocking, then refused unless it is a regular file, read up to a bound, and
    refused where tomllib would take minutes over it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigFileError(f"{path}: not a regular file: {_file_kind(mode)}")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES and (chunk := os.read(fd, MAX_CONFIG_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            f"{path}: too large: over {MAX_CONFIG_BYTES} bytes, where a configuration file is "
            "a few lines of TOML"
        )
    if data.count(b".") > MAX_CONFIG_DOTS:
        raise ConfigFileError(
            f"{path}: too many dots: over {MAX_CONFIG_DOTS}, where a configuration file has a few "
            "(keys nested that deep would take the parser minutes)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigFileError(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02x} on line {line} (TOML is UTF-8 text)"
        ) from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a file")


def load_config_file(path: Path) -> ConfigFile:
    text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion: a few hundred levels
        # exhaust Python's stack, where no real setting has more than one.
        raise ConfigFileError(f"{path}: not TOML: arrays or tables nested too deeply") from None
    try:
        return config_from(data, source=str(path))
    except ConfigFileError as exc:
        raise ConfigFileError(f"{path}: {exc}") from None


def config_from(data: Mapping[str, Any], source: str = "") -> ConfigFile:
    """Check and build; errors name the key (the caller adds the file)."""
    _known(data, "", {"server", "scheduler", "models"})
    server = _table(data.get("server", {}), "server")
    _known(server, "server.", set(SERVER_VARIABLES))
    counts = {
        COUNTS[key].variable: _count(value, f"server.{key}", COUNTS[key])
        for key, value in server.items()
        if key in COUNTS
    }
    keep_alive = (
        parse_duration(server["keep_alive"], "server.keep_alive")
        if "keep_alive" in server
        else None
    )
    sched = _table(data.get("scheduler", {}), "scheduler")
    _known(sched, "scheduler.", {"fair_queues", "eviction", "priority_aging"})
    eviction = sched.get("eviction", "ollama")
    if eviction not in EVICTIONS:
        raise ConfigFileError(
            f"scheduler.eviction: {_shown.repr(eviction)} is not one of {', '.join(EVICTIONS)}"
        )
    aging = DEFAULT_PRIORITY_AGING
    if "priority_aging" in sched:
        aging = parse_duration(sched["priority_aging"], "scheduler.priority_aging")
        if aging < MIN_PRIORITY_AGING:
            raise ConfigFileError(
                f"scheduler.priority_aging: {_shown.repr(sched['priority_aging'])} is under "
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
        policies=Policies(
            fair_queues=_bool(sched, "fair_queues", "scheduler."),
            eviction=eviction,
            priority_aging=aging,
            models=models,
            source=source,
        ),
        counts=counts,
        keep_alive=keep_alive,
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
        raise ConfigFileError(f"{where}.priority: {_shown.repr(priority)} is not an integer")
    if keep_alive is not None and section.get("pinned") is True:
        raise ConfigFileError(
            f"{where}.keep_alive: a pinned model stays loaded; keep_alive would not apply"
        )
    return ModelPolicy(
        # At least one: None, not 0, is "the server's setting" here.
        num_parallel=None if num_parallel is None else _count(
            num_parallel, w + "num_parallel", COUNTS["num_parallel"], minimum=1
        ),
        keep_alive=None if keep_alive is None else parse_duration(keep_alive, w + "keep_alive"),
        max_queue=None if max_queue is None else _count(
            max_queue, w + "max_queue", COUNTS["max_queue"], minimum=1
        ),
        pinned=_bool(section, "pinned", w),
        preload=_bool(section, "preload", w),
        priority=priority,
    )  # fmt: skip


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a number of seconds or a Go duration ("5m", "1h30m"), by the keep-alive
    rule: negative is forever."""
    shown = _shown.repr(value)
    if isinstance(value, str):
        try:
            return parse_keep_alive_duration(value)
        except DurationError:
            raise ConfigFileError(f'{where}: {shown} is not a duration ("5m", "1h", 300)') from (
                None
            )
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigFileError(f"{where}: {shown} is not a duration")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigFileError(f"{where}: {shown} is not a duration")
    # Stricter than a request's keep_alive, which reads such a number as forever: in a file it
    # is more likely a slip (nanoseconds meant as seconds) than a wish. An int is compared as
    # it is: TOML's may have 400 digits, which float() would refuse.
    if value > MAX_DURATION_SECONDS:
        raise ConfigFileError(f"{where}: {shown} is longer than Go's longest duration (292 years)")
    return keep_alive_seconds(value)


def _count(value: Any, where: str, allowed: Count, minimum: int | None = None) -> int:
    least = allowed.minimum if minimum is None else minimum
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigFileError(f"{where}: {_shown.repr(value)} is not an integer >= {least}")
    if value > allowed.maximum:
        raise ConfigFileError(
            f"{where}: {_shown.repr(value)} is more than {allowed.maximum}, {allowed.beyond}"
        )
    return value


def _bool(data: Mapping[str, Any], key: str, prefix: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ConfigFileError(f"{prefix}{key}: {_shown.repr(value)} is not true or false")
    return value


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigFileError(f"{where}: a table of keys, not {_shown.repr(value)}")
    return value


def _known(data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigFileError(
            f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})"
        )
