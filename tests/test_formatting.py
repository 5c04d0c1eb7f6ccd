from __future__ import annotations

from typing import Any

import pytest

from trio_ollama.cli.commands import running_models
from trio_ollama.cli.formatting import table
from trio_ollama.gocompat.format import human_bytes, human_duration, human_time


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (98_362_698, "98 MB"),
        (274_000_000, "274 MB"),
        (2_019_377_376, "2.0 GB"),
        (4_700_000_000, "4.7 GB"),
        (2_000_000_000, "2 GB"),
        (15_000_000_000, "15 GB"),
        (3_000_000_000_000, "3 TB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (300, "5 minutes"),
        (3600, "About an hour"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (3 * 7 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_time() -> None:
    assert human_time(None) == "Never"
    assert human_time(1000.0, now=1300.0) == "5 minutes ago"
    assert human_time(1300.0, now=1000.0) == "5 minutes from now"
    assert human_time(1000.0 + 300 * 365 * 86400, now=1000.0) == "Forever"


def test_table() -> None:
    assert table(["NAME", "ID"], [["smollm2:135m", "abc"]]) == (
        "NAME            ID     \nsmollm2:135m    abc    \n"
    )


class _Answers:
    """Answers `json()` as a server would, for a formatting test."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def json(self, method: str, path: str) -> dict[str, Any]:
        assert (method, path) == ("GET", "/api/ps")
        return self.answer


PS_ENTRY = {"name": "smollm2:135m", "digest": "9077e3b0c442", "size": 2**30, "size_vram": 0,
            "context_length": 4096, "expires_at": "2126-01-01T00:00:00Z"}  # fmt: skip


def test_ps_against_ollama_keeps_ollamas_columns() -> None:
    out = running_models(_Answers({"models": [PS_ENTRY]}), None)  # type: ignore[arg-type]
    assert out.splitlines()[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]


def test_ps_shows_the_queue_when_the_server_reports_it() -> None:
    entry = {**PS_ENTRY, "requests_running": 2, "requests_waiting": 5, "num_parallel": 2}
    out = running_models(_Answers({"models": [entry]}), None)  # type: ignore[arg-type]
    header, row = out.splitlines()
    assert header.split() == [
        "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "RUNNING", "WAITING", "SLOTS", "UNTIL",
    ]  # fmt: skip
    assert row.split()[:9] == ["smollm2:135m", "9077e3b0c442", "1.1", "GB", "100%", "CPU", "4096",
                               "2", "5"]  # fmt: skip
