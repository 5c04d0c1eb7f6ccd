from __future__ import annotations

import pytest

from trio_ollama.gocompat.durations import DurationError, format_go_duration, parse_go_duration_ns

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("1s", S),
        ("1.5s", 3 * S // 2),
        ("42m", 42 * 60 * S),
        ("1h30m", 90 * 60 * S),
        ("-1m", -60 * S),
        ("300ms", 300_000_000),
        ("2us", 2000),
        ("2µs", 2000),
        ("7ns", 7),
        (".5s", S // 2),
        ("1h2m3s4ms", 3723 * S + 4_000_000),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", 'time: missing unit in duration "10"'),
        ("", 'time: invalid duration ""'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("abc", 'time: invalid duration "abc"'),
        ("-", 'time: invalid duration "-"'),
        (".s", 'time: invalid duration ".s"'),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_go_duration_ns(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m0s"), (3600, "1h0m0s"), (1.5, "1.5s"), (0.3, "300ms"), (0, "0s"), (-60, "-1m0s")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text
