"""Flash attention decided per model and machine where nobody set OLLAMA_FLASH_ATTENTION
(runner/attention.py): measured once, kept in a file, off unless clearly faster."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from trio_ollama.runner import attention
from trio_ollama.runner.attention import (
    MARGIN,
    cache_file,
    flash_attention_faster,
    machine_key,
    remember,
    remembered,
)


def test_the_file_is_in_the_cache_folder() -> None:
    assert cache_file({"XDG_CACHE_HOME": "/x"}) == Path("/x/trio-ollama/flash-attention.json")


def test_answers_are_kept_by_key_and_a_damaged_file_is_no_answer(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "fa.json"
    assert remembered(path, "a") is None
    remember(path, "a", True)
    remember(path, "b", False)
    assert (remembered(path, "a"), remembered(path, "b"), remembered(path, "c")) == (
        True,
        False,
        None,
    )
    path.write_text("[1, 2")
    assert remembered(path, "a") is None
    remember(path, "c", True)  # a damaged file is replaced, not an error
    assert json.loads(path.read_text()) == {"c": True}
    path.write_text('{"a": "yes"}')
    assert remembered(path, "a") is None
    assert not list(path.parent.glob(".flash-attention-*")), "no temporary file left"


def test_the_key_names_the_weights_threads_cpu_and_llama(tmp_path: Path) -> None:
    weights = tmp_path / "sha256-abc"
    weights.write_bytes(b"x" * 10)
    key = machine_key(str(weights), 2, "0.3.36")
    assert key.startswith("sha256-abc:10:2:") and key.endswith(":0.3.36")
    assert machine_key(str(weights), 1, "0.3.36") != key


@pytest.mark.parametrize(
    ("off", "on", "expected"),
    [(10.0, 9.0, True), (10.0, 10 * MARGIN, False), (10.0, 9.6, False), (10.0, 12.0, False)],
)
def test_measured_once_then_read_and_off_unless_clearly_faster(
    off: float,
    on: float,
    expected: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls: list[int] = []

    def measured(L: Any, model: Any, n_threads: int) -> tuple[float, float]:
        calls.append(n_threads)
        return off, on

    monkeypatch.setattr(attention, "step_seconds", measured)
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"w")
    assert flash_attention_faster(None, None, str(weights), 2) is expected
    assert flash_attention_faster(None, None, str(weights), 2) is expected
    assert calls == [2], "measured once, then read from the file"
    assert flash_attention_faster(None, None, str(weights), 1) is expected
    assert calls == [2, 1], "another thread count is another answer"


@pytest.mark.parametrize(("off", "on"), [(math.inf, math.inf), (10.0, math.inf), (math.inf, 1.0)])
def test_what_could_not_be_measured_is_off_and_not_kept(
    off: float, on: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(attention, "step_seconds", lambda L, model, n_threads: (off, on))
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"w")
    assert flash_attention_faster(None, None, str(weights), 2) is False
    assert not cache_file().exists()


@pytest.mark.slow
def test_the_real_model_is_timed_both_ways_within_the_bound(
    default_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp as L

    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(default_gguf).encode(), L.llama_model_default_params())
    assert model
    rounds: list[int] = []
    steps = attention._Timed.steps

    def counted(self: Any, n: int, deadline: float) -> list[float]:
        got = steps(self, n, deadline)
        rounds.append(len(got))
        return got

    monkeypatch.setattr(attention._Timed, "steps", counted)
    try:
        off, on = attention.step_seconds(L, model, 2, seconds=60)
        assert 0 < off < math.inf and 0 < on < math.inf, (off, on)  # seconds: a busy machine's
        assert rounds == [attention.STEPS] * (2 * attention.ROUNDS)
        # A bound of nothing still times one step each way, and no more.
        rounds.clear()
        off, on = attention.step_seconds(L, model, 2, seconds=0)
        assert math.isfinite(off) and math.isfinite(on)
        assert rounds == [1, 1]
    finally:
        L.llama_model_free(model)
