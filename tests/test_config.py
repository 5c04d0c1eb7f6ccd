"""Settings parsing, table-tested against the cases of Ollama's `envconfig/config_test.go`; the
ranges the variables share with the configuration file; the one keep-alive rule, asked of every
place that reads a keep-alive."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest

from trio_ollama.api.errors import APIError
from trio_ollama.api.schemas import parse_keep_alive as api_keep_alive
from trio_ollama.cli.run import parse_keep_alive as cli_keep_alive
from trio_ollama.config import TRACE, ConfigError, Settings, env_var, parse_host
from trio_ollama.config_file import (
    COUNTS,
    MAX_CONFIG_BYTES,
    MAX_PARALLEL,
    ConfigFileError,
    load_config_file,
)
from trio_ollama.gocompat.durations import DurationError, parse_go_duration_ns
from trio_ollama.scheduler.policy import resolve_keep_alive


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":1234", "http://:1234"),
        ("1.2.3.4:1234", "http://1.2.3.4:1234"),
        ("example.com", "http://example.com:11434"),
        ("example.com:1234", "http://example.com:1234"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        (":66000", "http://:11434"),
        ("1.2.3.4:66000", "http://1.2.3.4:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434"),
        ("[::1]:1337", "http://[::1]:1337"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("http://1.2.3.4:4321", "http://1.2.3.4:4321"),
        ("https://1.2.3.4", "https://1.2.3.4:443"),
        ("https://1.2.3.4:4321", "https://1.2.3.4:4321"),
        ("https://example.com/ollama", "https://example.com:443/ollama"),
        ("ollama.com", "https://ollama.com:443"),
        ("  127.0.0.1:5000  ", "http://127.0.0.1:5000"),
    ],
)
def test_host(value: str, url: str) -> None:
    assert Settings.from_env({"OLLAMA_HOST": value}).host.url == url


def test_host_loopback_flags() -> None:
    assert parse_host("").is_loopback
    assert parse_host("[::1]:9").is_loopback
    assert parse_host("localhost:9").is_loopback
    assert not parse_host("0.0.0.0").is_loopback
    assert not parse_host("example.com").is_loopback


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("", 300.0),
        ("1h2m3s", 3723.0),
        ("60", 60.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("-1", math.inf),
        ("-1m", math.inf),
        ("1.5s", 1.5),
        (" ", 300.0),
        ("???", 300.0),
        ("1d", 300.0),
        ("1w", 300.0),
        ("1y", 300.0),
    ],
)
def test_keep_alive(value: str, seconds: float) -> None:
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": value}).keep_alive == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("", 300.0), ("1s", 1.0), ("1m", 60.0), ("10", 10.0), ("0", math.inf), ("-1", math.inf)],
)
def test_load_timeout(value: str, seconds: float) -> None:
    assert Settings.from_env({"OLLAMA_LOAD_TIMEOUT": value}).load_timeout == seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", False),
        ("false", False),
        ("0", False),
        ("F", False),
        ("true", True),
        ("1", True),
        ("T", True),
        ("random", True),
        ("  'true'  ", True),
    ],
)
def test_bool(value: str, expected: bool) -> None:
    assert Settings.from_env({"OLLAMA_NOPRUNE": value}).noprune is expected
    # Unset, flash attention is the runner's to decide (runner/attention.py); set, it is said.
    flash = Settings.from_env({"OLLAMA_FLASH_ATTENTION": value}).flash_attention
    assert flash is (None if value == "" else expected)
    assert Settings.from_env({}).flash_attention is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 1), ("0", 0), ("4", 4), ("-1", 1), ("0x10", 1), ("0o10", 1), ("string", 1), ("+2", 1)],
)
def test_uint_fallbacks(value: str, expected: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert Settings.from_env({"OLLAMA_NUM_PARALLEL": value}).num_parallel == expected
    if value and not value.isdigit():
        assert "invalid environment variable" in caplog.text


def test_uint_defaults() -> None:
    s = Settings.from_env({})
    assert (s.max_queue, s.max_loaded_models, s.num_parallel, s.context_length) == (512, 0, 1, 4096)
    assert s.max_runners(0) == 3 and s.max_runners(2) == 6
    assert Settings.from_env({"OLLAMA_MAX_LOADED_MODELS": "5"}).max_runners(2) == 5
    assert Settings.from_env({"OLLAMA_NUM_PARALLEL": "0"}).effective_num_parallel == 1


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("value", "value"),
        (" value ", "value"),
        (" 'value' ", "value"),
        (' "value" ', "value"),
        (" ' value ' ", " value "),
        (" \" ' value ' \" ", " ' value ' "),
    ],
)
def test_var_trimming(raw: str, value: str) -> None:
    assert env_var({"K": raw}, "K") == value


def test_origins() -> None:
    defaults = Settings.from_env({}).origins
    assert defaults[:4] == (
        "http://localhost",
        "https://localhost",
        "http://localhost:*",
        "https://localhost:*",
    )
    assert "http://0.0.0.0:*" in defaults and defaults[-1] == "vscode-file://*"
    assert len(defaults) == 17
    custom = Settings.from_env({"OLLAMA_ORIGINS": "http://10.0.0.1,https://a.b"}).origins
    assert custom[:2] == ("http://10.0.0.1", "https://a.b") and custom[2:] == defaults


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("", logging.INFO),
        ("false", logging.INFO),
        ("0", logging.INFO),
        ("true", logging.DEBUG),
        ("1", logging.DEBUG),
        ("2", TRACE),
        ("-1", logging.WARNING),
        ("-2", logging.ERROR),
        ("garbage", logging.INFO),
    ],
)
def test_debug_levels(value: str, level: int) -> None:
    assert Settings.from_env({"OLLAMA_DEBUG": value}).log_level == level


def test_models_dir(tmp_path: Path) -> None:
    assert Settings.from_env({"HOME": str(tmp_path)}).models_dir == tmp_path / ".ollama/models"
    assert Settings.from_env({"OLLAMA_MODELS": str(tmp_path)}).models_dir == tmp_path
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="OLLAMA_MODELS"):
        Settings.from_env({"OLLAMA_MODELS": str(a_file)})


def test_kv_cache_type_fallback() -> None:
    assert Settings.from_env({"OLLAMA_KV_CACHE_TYPE": "q8_0"}).kv_cache_type == "q8_0"
    assert Settings.from_env({"OLLAMA_KV_CACHE_TYPE": "bogus"}).kv_cache_type == ""


def test_settings_do_not_read_process_env_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", "7")
    assert Settings.from_env().max_queue == 7
    assert Settings.from_env({}).max_queue == 512


# ----- the ranges: one table for the variables and the configuration file


def config_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "trio-ollama.toml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OLLAMA_NUM_PARALLEL", "9223372036854775807", 1),
        ("OLLAMA_NUM_PARALLEL", "257", 1),
        ("OLLAMA_NUM_PARALLEL", "256", 256),
        ("OLLAMA_NUM_PARALLEL", "0", 0),
        ("OLLAMA_MAX_QUEUE", "0", 512),
        ("OLLAMA_MAX_QUEUE", "1", 1),
        ("OLLAMA_MAX_QUEUE", "1048577", 512),
        ("OLLAMA_MAX_LOADED_MODELS", "1025", 0),
        ("OLLAMA_MAX_LOADED_MODELS", "0", 0),
        ("OLLAMA_CONTEXT_LENGTH", "0", 4096),
        ("OLLAMA_CONTEXT_LENGTH", "2147483648", 4096),
        ("OLLAMA_CONTEXT_LENGTH", "2147483647", 2147483647),
    ],
)
def test_a_variable_out_of_range_falls_back_with_a_warning(
    variable: str, value: str, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    """As Ollama's `Uint` does for a value it cannot parse: the server starts, on the default."""
    field = variable.removeprefix("OLLAMA_").lower()
    with caplog.at_level(logging.WARNING):
        assert getattr(Settings.from_env({variable: value}), field) == expected
    assert ("out of range" in caplog.text) == (str(expected) != value)


@pytest.mark.parametrize("key", list(COUNTS))
def test_the_file_and_the_variable_accept_the_same_counts(tmp_path: Path, key: str) -> None:
    allowed = COUNTS[key]
    field = allowed.variable.removeprefix("OLLAMA_").lower()
    default = getattr(Settings.from_env({}), field)
    for value in {allowed.minimum - 1, allowed.minimum, allowed.maximum, allowed.maximum + 1}:
        in_range = allowed.minimum <= value <= allowed.maximum
        from_env = getattr(Settings.from_env({allowed.variable: str(value)}), field)
        assert from_env == (value if in_range else default), (key, value)
        path = config_file(tmp_path, f"[server]\n{key} = {value}\n")
        try:
            from_file = getattr(Settings.from_env({"TRIO_OLLAMA_CONFIG": str(path)}), field)
        except ConfigError:
            from_file = None
        assert from_file == (value if in_range else None), (key, value)


def test_the_parallel_bound_is_llama_cpps() -> None:
    import llama_cpp

    assert llama_cpp.llama_max_parallel_sequences() == MAX_PARALLEL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nmax_queue = 0\n", "server.max_queue: 0 is not an integer >= 1"),
        (
            "[server]\nnum_parallel = 9223372036854775807\n",
            "server.num_parallel: 9223372036854775807 is more than 256",
        ),
        ("[models.a]\nnum_parallel = 257\n", "models.a.num_parallel: 257 is more than 256"),
        ("[models.a]\nmax_queue = 1048577\n", "models.a.max_queue: 1048577 is more than 1048576"),
        ("[server]\nmax_loaded_models = 1025\n", "server.max_loaded_models: 1025 is more than"),
        ("[server]\ncontext_length = 2147483648\n", "server.context_length: 2147483648 is more"),
        # TOML integers have no bound in Python: float() of this one raised OverflowError.
        (f"[server]\nkeep_alive = 1{'0' * 400}\n", "server.keep_alive: 1000000000"),
        ("[server]\nkeep_alive = nan\n", "server.keep_alive: nan is not a duration"),
        ("[server]\nkeep_alive = inf\n", "server.keep_alive: inf is longer than Go's longest"),
        # A value quoted in a message is shown in brief, however large.
        (f"[server]\nnum_parallel = '{'x' * 100_000}'\n", "server.num_parallel: 'xxxxxxxxxx"),
        (f"x = {'[' * 100_000}{']' * 100_000}\n", "not TOML: arrays or tables nested too deeply"),
        (f"x = {'{a=' * 50_000}1{'}' * 50_000}\n", "not TOML: arrays or tables nested too deep"),
        (f"[models]\n{'a.' * 100_000}b = 1\n", "too many dots: over 2048"),
        ("#" * (MAX_CONFIG_BYTES + 1), f"too large: over {MAX_CONFIG_BYTES} bytes"),
        (b"[server]\n# caf\xe9\n", "not UTF-8: byte 0xe9 on line 2"),
    ],
)
def test_a_hostile_config_file_is_refused_quickly_and_briefly(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = config_file(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(ConfigFileError) as caught:
        load_config_file(path)
    # Generous: each is refused in well under a second; the dotted key took minutes.
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith(f"{path}: {message}")
    assert len(str(caught.value)) < 300 + len(str(path))


def test_only_a_regular_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="not a regular file: a directory"):
        load_config_file(tmp_path)
    with pytest.raises(ConfigFileError, match="not a regular file: a character device"):
        load_config_file(Path("/dev/zero"))


# ----- the keep-alive rule: negative is forever, and so is Go's longest duration or more

FOREVER = math.inf
# Go's longest duration, 2**63-1 ns, in whole seconds: the last one below it, the first past it.
LAST_SECOND = 9_223_372_036
FIRST_SECOND_PAST = 9_223_372_037

NUMBERS: list[tuple[Any, float]] = [
    (-1, FOREVER),
    (-3.14, FOREVER),
    (-1e300, FOREVER),
    (-0.0, 0.0),
    (0, 0.0),
    (0.5, 0.5),
    (42, 42.0),
    (300, 300.0),
    (LAST_SECOND, float(LAST_SECOND)),
    (FIRST_SECOND_PAST, FOREVER),
    (1e300, FOREVER),
]
DURATIONS: list[tuple[str, float]] = [
    ("-1m", FOREVER),
    ("-1ns", FOREVER),
    ("-0", 0.0),
    ("0", 0.0),
    ("300ms", 0.3),
    ("1h30m", 5400.0),
    ("2562047h47m16s", float(LAST_SECOND)),
    ("2562047h47m16.854775807s", FOREVER),  # exactly 2**63-1 ns: Go's "forever" itself
]


def file_keep_alive(tmp_path: Path, toml_value: str) -> tuple[float, float | None]:
    """A keep-alive from the configuration file: server-wide through Settings, and per model."""
    path = config_file(
        tmp_path, f"[server]\nkeep_alive = {toml_value}\n[models.a]\nkeep_alive = {toml_value}\n"
    )
    config = load_config_file(path)
    server = Settings.from_env({"TRIO_OLLAMA_CONFIG": str(path)}).keep_alive
    # The simulator's route, the file already read, reads the same (no text in between).
    assert Settings.from_env({}, config=config).keep_alive == server
    return server, config.policies.for_model("a").keep_alive


@pytest.mark.parametrize(("value", "seconds"), NUMBERS)
def test_a_keep_alive_in_seconds_means_the_same_everywhere(
    tmp_path: Path, value: Any, seconds: float
) -> None:
    assert api_keep_alive(value) == seconds
    assert resolve_keep_alive(value, None, 0) == seconds
    assert resolve_keep_alive(None, value, 0) == seconds
    assert resolve_keep_alive(None, None, value) == seconds
    if isinstance(value, int):  # a variable takes whole seconds
        assert Settings.from_env({"OLLAMA_KEEP_ALIVE": str(value)}).keep_alive == seconds
    if value <= LAST_SECOND:
        assert file_keep_alive(tmp_path, repr(value)) == (seconds, seconds)
    else:  # the file is stricter: past Go's longest duration is more likely a slip than a wish
        path = config_file(tmp_path, f"[server]\nkeep_alive = {value!r}\n")
        with pytest.raises(ConfigError, match="longer than Go's longest duration"):
            Settings.from_env({"TRIO_OLLAMA_CONFIG": str(path)})


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_a_keep_alive_as_a_go_duration_means_the_same_everywhere(
    tmp_path: Path, text: str, seconds: float
) -> None:
    assert api_keep_alive(text) == seconds
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": text}).keep_alive == seconds
    assert file_keep_alive(tmp_path, f'"{text}"') == (seconds, seconds)
    # `run --keepalive`: what the client sends, the server reads as the same keep-alive.
    sent = cli_keep_alive(text)
    if seconds == FOREVER:
        assert sent == -1
    else:
        assert isinstance(sent, str)
    assert api_keep_alive(sent) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2562047h47m16.854775807s", 2**63 - 1),
        ("-2562047h47m16.854775808s", -(2**63)),
        ("9223372036854775807ns", 2**63 - 1),
        ("2562047h47m16.854775808s", None),
        ("9223372036854775808ns", None),
        ("2562048h", None),
    ],
)
def test_go_durations_reach_gos_own_bounds_exactly(text: str, ns: int | None) -> None:
    """Go sums whole units in integers: its longest duration parses (a float sum refused it)."""
    if ns is None:
        with pytest.raises(DurationError, match="invalid duration"):
            parse_go_duration_ns(text)
    else:
        assert parse_go_duration_ns(text) == ns


def test_a_keep_alive_the_api_refuses_stays_refused() -> None:
    with pytest.raises(APIError, match="missing unit"):
        api_keep_alive("10")
    # A number of 400 digits is forever, not a 500 from float() overflowing.
    assert api_keep_alive(10**400) == FOREVER
