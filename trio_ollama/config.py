"""Settings from `OLLAMA_*` environment variables, parsed as Ollama's `envconfig` does.

`Settings.from_env(os.environ)` is called once, at the edge (CLI or library entry); everything
inside receives the frozen object. Bad values fall back to Ollama's defaults with a warning, as
Ollama does, so a typo never stops a server that Ollama itself would have started. A count
outside the range the configuration file allows (`config_file.COUNTS`) is a bad value too: it
would start a server that then fails every request.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from trio_ollama.config_file import (
    CONFIG_VARIABLE,
    COUNTS,
    ConfigFile,
    ConfigFileError,
    Policies,
    load_config_file,
)
from trio_ollama.gocompat.decode import INT64_MAX, INT64_MIN
from trio_ollama.gocompat.durations import (
    DurationError,
    keep_alive_seconds,
    parse_keep_alive_duration,
)
from trio_ollama.gocompat.strconv import parse_bool as go_parse_bool
from trio_ollama.logs import FORMAT_VARIABLE, LogFormat, parse_log_format

log = logging.getLogger(__name__)

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

DEFAULT_PORT = 11434
DEFAULT_KEEP_ALIVE = 5 * 60.0
DEFAULT_LOAD_TIMEOUT = 5 * 60.0
DEFAULT_MAX_QUEUE = 512
DEFAULT_NUM_PARALLEL = 1
DEFAULT_CONTEXT_LENGTH = 4096
DEFAULT_MODELS_PER_GPU = 3
DEFAULT_TRANSFER_STREAMS = 4
# Ollama's smallest download part: a blob under 1.6 GB is fetched in parts of this size.
DEFAULT_TRANSFER_PART_SIZE = 100 * 1000 * 1000
# JSON bodies are read whole (by a server, and by the fleet's ingress); images make them
# large, but not this large.
MAX_JSON_BODY = 64 * 1024 * 1024
DEFAULT_TRANSFER_SAVE_MS = 1000
KV_CACHE_TYPES = ("", "f16", "q8_0", "q4_0")
# The counts the configuration file checks, by the variable each stands for: one range for both.
_COUNT_RANGES = {count.variable: count for count in COUNTS.values()}
# Go's `strconv.ParseInt(s, 10, 64)`: Python's int() would also take "1_000" and "٣".
_GO_DECIMAL = re.compile(r"[+-]?[0-9]+")


class ConfigError(ValueError):
    """A setting that cannot be used at all; the message names the variable."""


def env_var(env: Mapping[str, str], key: str) -> str:
    """Ollama's `Var`: trim spaces, then any surrounding quote characters."""
    return env.get(key, "").strip().strip("\"'")


def parse_bool(value: str, default: bool = False) -> bool:
    """Ollama's `Bool`: empty is the default, unparsable counts as true."""
    if value == "":
        return default
    parsed = go_parse_bool(value)
    return True if parsed is None else parsed


def parse_uint(key: str, value: str, default: int) -> int:
    """Ollama's `Uint`: base-10 digits only; anything else is the default, with a warning."""
    if value == "":
        return default
    if value.isascii() and value.isdigit():
        return int(value)
    log.warning("invalid environment variable, using default", extra={"key": key, "value": value})
    return default


def parse_count(key: str, value: str, default: int) -> int:
    """`parse_uint`, then the range the configuration file allows for the same setting: a value
    outside it is refused as Ollama refuses an unparsable one, for the default with a warning."""
    number = parse_uint(key, value, default)
    allowed = _COUNT_RANGES.get(key)
    if allowed is None or allowed.minimum <= number <= allowed.maximum:
        return number
    log.warning(
        "environment variable out of range, using default",
        extra={"key": key, "value": value, "minimum": allowed.minimum, "maximum": allowed.maximum},
    )
    return default


def parse_env_duration(value: str, default: float) -> float:
    """`OLLAMA_KEEP_ALIVE`-style: a Go duration, else integer seconds, else the default.

    Returns seconds, by the keep-alive rule: negative means forever (`math.inf`).
    """
    if not value:
        return keep_alive_seconds(default)
    try:
        return parse_keep_alive_duration(value)
    except DurationError:
        pass
    if _GO_DECIMAL.fullmatch(value) and INT64_MIN <= int(value) <= INT64_MAX:
        return keep_alive_seconds(float(int(value)))
    log.warning("invalid duration %r, using default %ss", value, default)
    return keep_alive_seconds(default)


@attrs.frozen
class HostURL:
    """`OLLAMA_HOST` as Ollama resolves it: scheme, host, port and optional path."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def netloc(self) -> str:
        return join_host_port(self.host, self.port)

    @property
    def url(self) -> str:
        path = "/" + self.path if self.path and not self.path.startswith("/") else self.path
        return f"{self.scheme}://{self.netloc}{path}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's `net.SplitHostPort`; None where Go returns an error."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1 :].startswith(":"):
            return None
        return hostport[1:end], hostport[end + 2 :]
    head, sep, port = hostport.rpartition(":")
    if not sep or ":" in head:
        return None
    return head, port


def parse_host(value: str) -> HostURL:
    """Ollama's `envconfig.Host()`, case by case (`TestHost` in its `envconfig/config_test.go`)."""
    default_port = str(DEFAULT_PORT)
    s = value.strip()
    scheme, sep, hostport = s.partition("://")
    if not sep:
        scheme, hostport = "http", s
        if s == "ollama.com":
            scheme, hostport = "https", "ollama.com:443"
    elif scheme == "http":
        default_port = "80"
    elif scheme == "https":
        default_port = "443"
    hostport, _, path = hostport.partition("/")
    split = _split_host_port(hostport)
    if split is None:
        host, port = "127.0.0.1", default_port
        bare = hostport.strip("[]")
        try:
            host = str(ipaddress.ip_address(bare))
        except ValueError:
            if hostport:
                host = hostport
    else:
        host, port = split
    try:
        port_number = int(port, 10)
        if not 0 <= port_number <= 65535:
            raise ValueError(port)
    except ValueError:
        log.warning("invalid port %r, using default %s", port, default_port)
        port_number = int(default_port)
    return HostURL(scheme=scheme, host=host, port=port_number, path=path)


def default_origins() -> tuple[str, ...]:
    origins: list[str] = []
    for host in ("localhost", "127.0.0.1", "0.0.0.0"):
        origins += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    origins += ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]
    return tuple(origins)


def parse_origins(value: str) -> tuple[str, ...]:
    user = tuple(value.split(",")) if value else ()
    return user + default_origins()


def parse_log_level(value: str) -> int:
    """`OLLAMA_DEBUG` → a `logging` level: true/1 debug, 2 trace, -1 warn, -2 error."""
    slog_level = 0
    if value:
        if go_parse_bool(value):
            slog_level = -4
        else:
            try:
                slog_level = -4 * int(value, 10)
            except ValueError:
                slog_level = 0
    # slog levels step by 4 per named level, Python's by 10.
    return max(TRACE, int(logging.INFO + slog_level * 2.5))


def _default_models_dir(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".ollama" / "models"


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """trio-ollama's own cache (the default model's wheel, measured runner settings)."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trio-ollama"


def log_settings(env: Mapping[str, str]) -> tuple[int, LogFormat]:
    """The log level (`OLLAMA_DEBUG`) and format (`TRIO_OLLAMA_LOG_FORMAT`). Read on their own
    too, so that logging is set up before the other settings are read and warned about."""
    return parse_log_level(env_var(env, "OLLAMA_DEBUG")), parse_log_format(
        env.get(FORMAT_VARIABLE, "")
    )


@attrs.frozen(kw_only=True)
class Settings:
    host: HostURL = attrs.field(factory=lambda: parse_host(""))
    origins: tuple[str, ...] = attrs.field(factory=default_origins)
    models_dir: Path = attrs.field(factory=lambda: _default_models_dir(os.environ))
    keep_alive: float = DEFAULT_KEEP_ALIVE
    load_timeout: float = DEFAULT_LOAD_TIMEOUT
    max_loaded_models: int = 0
    num_parallel: int = DEFAULT_NUM_PARALLEL
    max_queue: int = DEFAULT_MAX_QUEUE
    context_length: int = DEFAULT_CONTEXT_LENGTH
    # None where OLLAMA_FLASH_ATTENTION is not set: off, except that a runner with no layer on
    # a GPU turns it on where it measures it faster (runner/attention.py).
    flash_attention: bool | None = None
    kv_cache_type: str = ""
    noprune: bool = False
    sched_spread: bool = False
    gpu_overhead: int = 0
    log_level: int = logging.INFO
    log_format: LogFormat = "text"
    nohistory: bool = False
    # TRIO_OLLAMA_METRICS=0 records no metrics (/metrics still answers): for measuring their cost.
    metrics: bool = True
    # From the configuration file (`TRIO_OLLAMA_CONFIG`); Ollama's behaviour without one.
    policies: Policies = attrs.field(factory=Policies)
    # Pull and push: parallel part transfers per blob, and the smallest part (a test or a slow
    # link may want smaller parts: TRIO_OLLAMA_TRANSFER_PART_SIZE, in bytes).
    max_transfer_streams: int = DEFAULT_TRANSFER_STREAMS
    transfer_part_size: int = DEFAULT_TRANSFER_PART_SIZE
    # Seconds between saves of a download's progress (`registry.download.SAVE_EVERY`); the
    # real server's tests set it small (TRIO_OLLAMA_TRANSFER_SAVE_MS, in milliseconds).
    transfer_save_every: float = DEFAULT_TRANSFER_SAVE_MS / 1000

    @property
    def effective_num_parallel(self) -> int:
        return max(self.num_parallel, 1)

    def max_runners(self, gpu_count: int) -> int:
        """`OLLAMA_MAX_LOADED_MODELS`, where 0 means 3 per GPU (at least 3)."""
        if self.max_loaded_models > 0:
            return self.max_loaded_models
        return DEFAULT_MODELS_PER_GPU * max(gpu_count, 1)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, config: ConfigFile | None = None
    ) -> Settings:
        """The settings from `env` (default: the process's) and the configuration file: the one
        `TRIO_OLLAMA_CONFIG` names, or `config`, already read (the simulator's `[config]`)."""
        env = os.environ if env is None else env
        config_path = env.get(CONFIG_VARIABLE, "").strip()
        if config is None and config_path:
            try:
                config = load_config_file(Path(config_path).expanduser())
            except ConfigFileError as exc:
                raise ConfigError(str(exc)) from None
        if config is None:
            config = ConfigFile(policies=Policies())

        def var(key: str) -> str:
            return env_var(env, key)

        # The file's [server] settings, already checked, unless the variable itself is set.
        def count(key: str, default: int) -> int:
            if key in config.counts and not var(key):
                return config.counts[key]
            return parse_count(key, var(key), default)

        keep_alive = (
            config.keep_alive
            if config.keep_alive is not None and not var("OLLAMA_KEEP_ALIVE")
            else parse_env_duration(var("OLLAMA_KEEP_ALIVE"), DEFAULT_KEEP_ALIVE)
        )

        models = var("OLLAMA_MODELS")
        models_dir = Path(models).expanduser() if models else _default_models_dir(env)
        if models_dir.exists() and not models_dir.is_dir():
            raise ConfigError(f"OLLAMA_MODELS={models_dir} is not a directory")
        kv_cache_type = var("OLLAMA_KV_CACHE_TYPE").lower()
        if kv_cache_type not in KV_CACHE_TYPES:
            log.warning("unsupported OLLAMA_KV_CACHE_TYPE %r, using f16", kv_cache_type)
            kv_cache_type = ""
        load_timeout = parse_env_duration(var("OLLAMA_LOAD_TIMEOUT"), DEFAULT_LOAD_TIMEOUT)
        log_level, log_format = log_settings(env)
        return cls(
            host=parse_host(var("OLLAMA_HOST")),
            origins=parse_origins(var("OLLAMA_ORIGINS")),
            models_dir=models_dir,
            keep_alive=keep_alive,
            load_timeout=math.inf if load_timeout <= 0 else load_timeout,
            max_loaded_models=count("OLLAMA_MAX_LOADED_MODELS", 0),
            num_parallel=count("OLLAMA_NUM_PARALLEL", DEFAULT_NUM_PARALLEL),
            max_queue=count("OLLAMA_MAX_QUEUE", DEFAULT_MAX_QUEUE),
            context_length=count("OLLAMA_CONTEXT_LENGTH", DEFAULT_CONTEXT_LENGTH),
            flash_attention=parse_bool(fa) if (fa := var("OLLAMA_FLASH_ATTENTION")) else None,
            kv_cache_type=kv_cache_type,
            noprune=parse_bool(var("OLLAMA_NOPRUNE")),
            sched_spread=parse_bool(var("OLLAMA_SCHED_SPREAD")),
            gpu_overhead=parse_uint("OLLAMA_GPU_OVERHEAD", var("OLLAMA_GPU_OVERHEAD"), 0),
            log_level=log_level,
            log_format=log_format,
            nohistory=parse_bool(var("OLLAMA_NOHISTORY")),
            metrics=var("TRIO_OLLAMA_METRICS").strip().lower() not in ("0", "false", "off"),
            policies=config.policies,
            max_transfer_streams=max(
                1,
                parse_uint(
                    "OLLAMA_MAX_TRANSFER_STREAMS",
                    var("OLLAMA_MAX_TRANSFER_STREAMS"),
                    DEFAULT_TRANSFER_STREAMS,
                ),
            ),
            transfer_part_size=max(
                1,
                parse_uint(
                    "TRIO_OLLAMA_TRANSFER_PART_SIZE",
                    var("TRIO_OLLAMA_TRANSFER_PART_SIZE"),
                    DEFAULT_TRANSFER_PART_SIZE,
                ),
            ),
            transfer_save_every=max(
                1,
                parse_uint(
                    "TRIO_OLLAMA_TRANSFER_SAVE_MS",
                    var("TRIO_OLLAMA_TRANSFER_SAVE_MS"),
                    DEFAULT_TRANSFER_SAVE_MS,
                ),
            )
            / 1000,
        )
