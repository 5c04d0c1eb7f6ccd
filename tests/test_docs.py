"""The examples in docs/ run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model

# The examples run the real model.
pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[1] / "docs"


def code_block(page: str) -> str:
    match = re.search(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
    assert match, f"{page} has no python example"
    return match.group(1)


def test_scheduler_example_runs(tmp_path: Path, default_gguf: Path) -> None:
    ensure_default_model(Store(tmp_path / "models"))
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code_block("scheduler.md"), "docs/scheduler.md", "exec"), namespace)
    answers = trio.run(namespace["main"], str(tmp_path / "models"))  # type: ignore[arg-type]
    assert len(answers) == 2 and all(answers)
    assert any("Paris" in a for a in answers)


def test_serve_example_runs(tmp_path: Path, default_gguf: Path) -> None:
    ensure_default_model(Store(tmp_path / "models"))
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code_block("api.md"), "docs/api.md", "exec"), namespace)
    answer = trio.run(namespace["main"], str(tmp_path / "models"))  # type: ignore[arg-type]
    assert isinstance(answer, str) and "Paris" in answer
