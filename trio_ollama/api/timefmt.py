"""Timestamps as Ollama writes them (Go's RFC3339Nano)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from trio_ollama.gocompat.durations import MAX_DURATION_SECONDS

# Go's time.Duration tops out at ~292 years: what "forever" shows as in expires_at.
FOREVER_SECONDS = MAX_DURATION_SECONDS


def _trim(iso: str) -> str:
    date, dot, rest = iso.partition(".")
    if not dot:
        return iso
    n = len(rest) - len(rest.lstrip("0123456789"))
    digits, zone = rest[:n], rest[n:]
    digits = digits.rstrip("0")
    return f"{date}.{digits}{zone}" if digits else f"{date}{zone}"


def utc_now() -> str:
    """`created_at`: UTC, `Z`, fractional seconds without trailing zeros."""
    return _trim(datetime.now(UTC).isoformat()).replace("+00:00", "Z")


def local_time(timestamp: float) -> str:
    """`modified_at` / `expires_at`: local time with its offset."""
    seconds = min(timestamp, time.time() + FOREVER_SECONDS)
    try:
        moment = datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, ValueError, OSError):
        moment = datetime(9999, 12, 31).astimezone()
    return _trim(moment.isoformat())
