"""Log lines carry their fields: `key=value` in text, keys in JSON lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from trio_ollama.logs import JSONFormatter, TextFormatter, fields, parse_log_format


def record(msg: str = "model loaded", **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("trio_ollama.scheduler", logging.INFO, "f.py", 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_fields_are_only_what_extra_added() -> None:
    assert fields(record(model="smollm2:135m", pid=42)) == {"model": "smollm2:135m", "pid": 42}
    assert fields(record()) == {}


def test_text_puts_fields_after_the_message_quoting_when_needed() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(
        record(model="smollm2:135m", pid=42, reason="no such file", empty="")
    )
    assert line == 'INFO model loaded model=smollm2:135m pid=42 reason="no such file" empty=""'


def test_text_keeps_the_traceback_after_the_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", None, sys.exc_info())
    rec.model = "m"
    first, *rest = TextFormatter("%(message)s").format(rec).splitlines()
    assert first == "failed model=m"
    assert rest[-1] == "ValueError: boom"


def test_json_lines() -> None:
    line = JSONFormatter({"runner_pid": 7}).format(record(model="m", size=10))
    data = json.loads(line)
    assert data["msg"] == "model loaded" and data["level"] == "INFO"
    assert data["logger"] == "trio_ollama.scheduler"
    assert (data["model"], data["size"], data["runner_pid"]) == ("m", 10, 7)
    assert data["time"].endswith("Z")


def test_parse_log_format(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_log_format("") == "text"
    assert parse_log_format("JSON") == "json"
    assert parse_log_format("xml") == "text"
    assert "unknown log format" in caplog.text


def cli_stderr(env: dict[str, str]) -> str:
    # `list` against a server that is not there: the settings' warning comes first.
    env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:9", **env}
    result = subprocess.run(
        [sys.executable, "-m", "trio_ollama", "list"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stderr


@pytest.mark.slow
def test_the_cli_says_which_variable_is_invalid() -> None:
    stderr = cli_stderr({"OLLAMA_NUM_PARALLEL": "lots"})
    warning = next(line for line in stderr.splitlines() if "invalid environment" in line)
    assert warning.endswith("key=OLLAMA_NUM_PARALLEL value=lots")


@pytest.mark.slow
def test_the_cli_logs_json_lines_when_asked() -> None:
    stderr = cli_stderr({"OLLAMA_NUM_PARALLEL": "lots", "TRIO_OLLAMA_LOG_FORMAT": "json"})
    first = json.loads(stderr.splitlines()[0])
    assert first["msg"] == "invalid environment variable, using default"
    assert (first["key"], first["value"], first["level"]) == (
        "OLLAMA_NUM_PARALLEL",
        "lots",
        "WARNING",
    )
