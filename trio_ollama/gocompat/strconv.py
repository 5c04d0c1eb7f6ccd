"""Go's `strconv` where Ollama's inputs go through it."""

from __future__ import annotations


def parse_bool(value: str) -> bool | None:
    """`strconv.ParseBool`; None where Go returns an error."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None
