"""`show MODEL` without a section flag: Ollama's `showInfo`, indented borderless tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from trio_ollama.cli.formatting import table
from trio_ollama.gocompat.format import human_number

Rows = list[list[str]]

# Ollama shortens arrays in the metadata table to what fits this many columns.
ARRAY_WIDTH = 10
MODEL_NUMBERS = (("context length", "context_length"), ("embedding length", "embedding_length"))
PROJECTOR_NUMBERS = (
    ("embedding length", "vision.embedding_length"),
    ("dimensions", "vision.projection_dim"),
)


def go_float(value: float, exponent_at: int = 6) -> str:
    """Go's shortest `%g` (`exponent_at=6`), or `%v` (21): JSON numbers are float64 in Go."""
    if value == 0:
        return "0"
    if math.isinf(value) or math.isnan(value):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(value, "NaN")
    sign, digits, exp = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    point = len(text) + exp  # digits before the decimal point
    decimal_exp = point - 1
    if decimal_exp < -4 or decimal_exp >= exponent_at:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if decimal_exp < 0 else '+'}{abs(decimal_exp):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return "-" + out if sign else out


def go_value(value: Any) -> str:
    """Go's `%v` for a value decoded from JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(float(value), exponent_at=21)
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def metadata_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return go_float(float(value))
    if isinstance(value, list):
        shown, width = 0, 1  # the opening bracket
        for i, item in enumerate(value):
            item_width = len(go_value(item)) + (2 if i > 0 else 0)
            if width + item_width > ARRAY_WIDTH and i > 0:
                break
            width += item_width
            shown += 1
        if shown < len(value):
            return go_value(value[:shown])[:-1] + f" ...+{len(value) - shown} more]"
        return go_value(value)
    return "map[string]interface {}" if isinstance(value, dict) else type(value).__name__


def _number(info: Mapping[str, Any], key: str) -> str | None:
    value = info.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return go_float(float(value), exponent_at=21)
    return None


def _model_rows(resp: Mapping[str, Any]) -> Rows:
    details = resp.get("details") or {}
    info = resp.get("model_info")
    rows: Rows = []
    if info is not None:
        arch = info.get("general.architecture")
        if isinstance(arch, str) and arch:
            rows.append(["", "architecture", arch])
        params = details.get("parameter_size") or ""
        count = info.get("general.parameter_count")
        if not params and isinstance(count, int | float):
            params = human_number(int(count))
        if params:
            rows.append(["", "parameters", params])
        for label, key in MODEL_NUMBERS:
            value = _number(info, f"{arch}.{key}")
            if value is not None:
                rows.append(["", label, value])
    else:
        rows.append(["", "architecture", details.get("family", "")])
        rows.append(["", "parameters", details.get("parameter_size", "")])
    rows.append(["", "quantization", details.get("quantization_level", "")])
    return rows


def _projector_rows(info: Mapping[str, Any]) -> Rows:
    arch = info.get("general.architecture", "")
    rows: Rows = [["", "architecture", str(arch)]]
    count = info.get("general.parameter_count")
    if isinstance(count, int | float):
        rows.append(["", "parameters", human_number(int(count))])
    for label, key in PROJECTOR_NUMBERS:
        value = _number(info, f"{arch}.{key}")
        if value is not None:
            rows.append(["", label, value])
    return rows


def _head(text: str, n: int) -> Rows:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in lines[:n]]
    if len(lines) > n:
        rows.append(["", "..."])
    return rows


def _section(header: str, rows: Sequence[Sequence[str]]) -> str:
    # Ollama prints `fmt.Fprintln(w, " ", header)`, the table, then an empty line.
    body = table(rows[0], rows[1:]) if rows else ""
    return f"  {header}\n{body}\n"


def show_info(resp: Mapping[str, Any], verbose: bool = False) -> str:
    sections: list[tuple[str, Callable[[], Rows]]] = [("Model", lambda: _model_rows(resp))]
    capabilities = resp.get("capabilities") or []
    if capabilities:
        sections.append(("Capabilities", lambda: [["", c] for c in capabilities]))
    projector = resp.get("projector_info")
    if projector:
        sections.append(("Projector", lambda: _projector_rows(projector)))
    parameters = resp.get("parameters") or ""
    if parameters:
        sections.append(
            (
                "Parameters",
                lambda: [["", *line.split()] for line in parameters.splitlines() if line],
            )
        )
    info = resp.get("model_info")
    if info is not None and verbose:
        sections.append(
            ("Metadata", lambda: [["", k, metadata_value(info[k])] for k in sorted(info)])
        )
    tensors = resp.get("tensors") or []
    if tensors and verbose:
        sections.append(
            (
                "Tensors",
                lambda: [
                    ["", t.get("name", ""), t.get("type", ""), go_value(t.get("shape", []))]
                    for t in tensors
                ],
            )
        )
    if resp.get("system"):
        sections.append(("System", lambda: _head(resp["system"], 2)))
    if resp.get("license"):
        sections.append(("License", lambda: _head(resp["license"], 2)))
    return "".join(_section(header, _pad(rows())) for header, rows in sections)


def _pad(rows: Rows) -> Rows:
    # tablewriter fills short rows (a parameter with no value) with empty cells.
    width = max((len(r) for r in rows), default=0)
    return [r + [""] * (width - len(r)) for r in rows]
