"""Go's `time.ParseDuration`, because Ollama's keep-alive and timeouts are written in it.

Durations are kept as float seconds inside the project; "forever" is `math.inf`, which is what
Ollama's `math.MaxInt64` nanoseconds means and what a Trio deadline understands. Ollama's keep-alive
rule (negative is forever) is here once, for the API, the variables, the configuration file, the
CLI and the scheduler alike.
"""

from __future__ import annotations

import math

from trio_ollama.gocompat.decode import INT64_MAX

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
# A Go `time.Duration` is an int64 of nanoseconds: 292 years at most.
MAX_DURATION_NS = INT64_MAX
MAX_DURATION_SECONDS = MAX_DURATION_NS / SECOND
_GO_LIMIT = MAX_DURATION_NS + 1  # what Go's parser sums to, in uint64, before the sign is applied


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
    total = 0
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
        # Go's arithmetic: whole units exactly, in uint64 with overflow checks; a fraction
        # through float64, truncated. A float sum would refuse Go's own longest duration.
        value = int(whole or "0")
        if value > _GO_LIMIT // scale:
            raise DurationError(f"time: invalid duration {_quote(orig)}")
        value *= scale
        if frac:
            digits, divisor = _leading_fraction(frac)
            value += int(float(digits) * (float(scale) / divisor))
        total += value
        if value > _GO_LIMIT or total > _GO_LIMIT:
            raise DurationError(f"time: invalid duration {_quote(orig)}")
    if not neg and total > MAX_DURATION_NS:
        raise DurationError(f"time: invalid duration {_quote(orig)}")
    return -total if neg else total


def _leading_fraction(digits: str) -> tuple[int, float]:
    """Go's `leadingFraction`: the digits as an integer and 10 to their count, ignoring the
    digits past the point where the integer would overflow."""
    value, divisor = 0, 1.0
    for digit in digits:
        if value > MAX_DURATION_NS // 10 or value * 10 + int(digit) > _GO_LIMIT:
            break
        value = value * 10 + int(digit)
        divisor *= 10
    return value, divisor


def ns_to_seconds(ns: int) -> float:
    return ns / SECOND


def keep_alive_seconds(seconds: float) -> float:
    """Ollama's keep-alive rule: a negative duration is forever (Ollama stores `math.MaxInt64`),
    and so is one that reaches Go's longest duration, which int64 nanoseconds cannot go past."""
    if seconds < 0 or seconds * SECOND >= MAX_DURATION_NS:
        return FOREVER
    return seconds + 0.0  # -0.0 is plain 0


def parse_keep_alive_duration(text: str) -> float:
    """A keep-alive written as a Go duration ("5m", "-1m"), in seconds; `DurationError` if Go
    would refuse the text."""
    return keep_alive_seconds(ns_to_seconds(parse_go_duration_ns(text)))


def keep_alive_json(seconds: float) -> int | str:
    """A keep-alive as Ollama's client sends it (`api.Duration`'s JSON): -1 for forever, else a
    Go duration string ("5m0s")."""
    return -1 if math.isinf(seconds) else format_go_duration(seconds)


def format_go_duration(seconds: float) -> str:
    """Go's `Duration.String()` ("5m0s", "1.5s", "300ms"), for values shown to users."""
    if math.isinf(seconds):
        seconds = MAX_DURATION_SECONDS
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
