"""Settings parsing, table-tested against the cases of Ollama's `envconfig/config_test.go`."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from trio_ollama.config import TRACE, ConfigError, Settings, env_var, parse_host


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
    assert Settings.from_env({"OLLAMA_FLASH_ATTENTION": value}).flash_attention is expected


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
