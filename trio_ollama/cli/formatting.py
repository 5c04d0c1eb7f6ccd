"""Ollama's borderless tables (tablewriter as its CLI sets it up)."""

from __future__ import annotations

from collections.abc import Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """tablewriter as Ollama sets it up: no borders, left-aligned, four spaces between columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "    ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    return "".join(line + "    \n" for line in lines)
