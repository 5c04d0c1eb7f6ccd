"""The benchmark scripts still run (tiny settings): they are how speed is measured, so they must
not rot. Their figures are printed, never asserted (docs/performance.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "LLAMA_SERVER": "/nonexistent/llama-server"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def row(output: str, target: str) -> re.Match[str] | None:
    return re.search(rf"^{re.escape(target)}\s+1\s+(\d+\.\d)\s", output, re.MULTILINE)


def test_the_serve_benchmark_runs_and_says_when_llama_server_is_missing(default_gguf: Path) -> None:
    out = run("benchmarks.serve", "--rounds", "1", "--clients", "1", "--tokens", "4",
              "--pp-samples", "1")  # fmt: skip
    assert "llama-server: not found at /nonexistent/llama-server" in out
    assert row(out, "trio-ollama") and row(out, "plain loop"), out
    assert re.search(r"trio-ollama\s+TTFT\s+\d+\.\d ms, prompt tokens \[\d+\]", out), out
    assert re.search(r"trio-ollama\s+resident\s+\d+\.\d MiB, KV\s+\d+\.\d MiB", out), out


def test_the_runner_benchmark_runs(default_gguf: Path) -> None:
    out = run("benchmarks.runner", "--rounds", "1", "--clients", "1", "--tokens", "4")
    assert row(out, "runner") and row(out, "plain loop"), out


def test_the_fixed_cost_benchmark_needs_llama_server() -> None:
    # It is a comparison or nothing: without its peer it says where it looked and fails.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.fixed_cost", "--pairs", "1", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LLAMA_SERVER": "/nonexistent/llama-server"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "llama-server: not found at /nonexistent/llama-server" in done.stderr
