from __future__ import annotations

import pytest

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
