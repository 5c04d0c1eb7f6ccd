"""Go's `time.ParseDuration`, because Ollama's keep-alive and timeouts are written in it.

Durations are kept as float seconds inside the project; "forever" is `math.inf`, which is what
Ollama's `math.MaxInt64` nanoseconds means and what a Trio deadline understands.
"""

from __future__ import annotations

import math

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,
    "\u03bcs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

FOREVER = math.inf
_MAX_NS = 2**63 - 1


class DurationError(ValueError):
    """A duration string Go would reject; the message is Go's."""


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_go_duration_ns(text: str) -> int:
    """Parse like Go's `time.ParseDuration`, returning integer nanoseconds."""
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {_quote(orig)}")
    total = 0.0
    while s:
        i = 0
        while i < len(s) and s[i].isdigit() and s[i].isascii():
            i += 1
        whole = s[:i]
        s = s[i:]
        frac = ""
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and s[j].isdigit() and s[j].isascii():
                j += 1
            frac = s[:j]
            s = s[j:]
        if not whole and not frac:
            raise DurationError(f"time: invalid duration {_quote(orig)}")
        j = 0
        while j < len(s) and s[j] != "." and not (s[j].isdigit() and s[j].isascii()):
            j += 1
        unit = s[:j]
        s = s[j:]
        if not unit:
            raise DurationError(f"time: missing unit in duration {_quote(orig)}")
        scale = _UNITS.get(unit)
        if scale is None:
            raise DurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(orig)}")
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale / 10 ** len(frac)
        if total > _MAX_NS:
            raise DurationError(f"time: invalid duration {_quote(orig)}")
    ns = int(total)
    return -ns if neg else ns


def ns_to_seconds(ns: int) -> float:
    return ns / SECOND


def format_go_duration(seconds: float) -> str:
    """Go's `Duration.String()` ("5m0s", "1.5s", "300ms"), for values shown to users."""
    if math.isinf(seconds):
        seconds = _MAX_NS / SECOND
    ns = round(seconds * SECOND)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < SECOND:
        for unit, scale in (("ms", MILLISECOND), ("\u00b5s", MICROSECOND), ("ns", NANOSECOND)):
            if ns >= scale:
                return sign + _trim(ns / scale) + unit
    hours, rest = divmod(ns, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    secs = _trim(rest / SECOND)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
