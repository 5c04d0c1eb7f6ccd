"""Ollama's model options: names, kinds, defaults, ranges and when each applies (its `api.Options`).

One table serves the Modelfile (`PARAMETER` strings), the params layer, the API's `options`, the
runner's load parameters and its per-request sampling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from trio_ollama.gocompat.decode import INT32_MAX, INT64_MAX, INT64_MIN
from trio_ollama.gocompat.strconv import parse_bool as go_parse_bool

log = logging.getLogger(__name__)

Kind = Literal["int", "float", "bool", "strings"]
# When an option takes effect: "load" options are fixed when a runner loads (changing one means a
# reload: Ollama's `needsReload`, `server/sched.go`); "predict" options are per request, sent to
# the runner with each one.
Stage = Literal["load", "predict"]

# Ollama keeps float options as float32: anything larger becomes +Inf on the way to the runner.
FLOAT32_MAX = 3.4028234663852886e38


@attrs.frozen
class Option:
    """One option: its JSON kind, default, stage, and the range that keeps a runner sane.

    Integers that reach llama.cpp are C `int`s: beyond INT32_MAX they would wrap around. The
    lower bounds keep Ollama's sentinels (-1 "auto" or "infinite", -2 "fill the context").
    """

    name: str
    kind: Kind
    default: Any
    stage: Stage
    minimum: float | None = None
    maximum: float | None = None


def _int(name: str, default: int, stage: Stage, minimum: int, maximum: int = INT32_MAX) -> Option:
    return Option(name, "int", default, stage, minimum, maximum)


def _float(
    name: str, default: float, minimum: float = -FLOAT32_MAX, maximum: float = FLOAT32_MAX
) -> Option:
    return Option(name, "float", default, "predict", minimum, maximum)


# The table (Ollama's `api.Options` and `DefaultOptions`, `api/types.go`). num_ctx's default is
# OLLAMA_CONTEXT_LENGTH, a setting.
OPTIONS: Mapping[str, Option] = {
    option.name: option
    for option in (
        _int("num_ctx", 4096, "load", 0),  # 0 and up: a runner raises it to its minimum
        _int("num_batch", 512, "load", 1),
        _int("num_gpu", -1, "load", -1),
        _int("main_gpu", 0, "load", 0),
        Option("use_mmap", "bool", None, "load"),
        _int("num_thread", 0, "load", 0),
        _int("num_keep", 4, "predict", -1),
        _int("seed", -1, "predict", INT64_MIN, INT64_MAX),
        _int("num_predict", -1, "predict", -2),
        _int("top_k", 40, "predict", 0),
        _float("top_p", 0.9, 0.0, 1.0),
        _float("min_p", 0.0, 0.0, 1.0),
        _float("typical_p", 1.0, 0.0, 1.0),
        _int("repeat_last_n", 64, "predict", -1),
        _float("temperature", 0.8, 0.0),
        _float("repeat_penalty", 1.1),
        _float("presence_penalty", 0.0),
        _float("frequency_penalty", 0.0),
        Option("stop", "strings", (), "predict"),
    )
}
OPTION_KINDS: Mapping[str, Kind] = {name: option.kind for name, option in OPTIONS.items()}
LOAD_OPTIONS: tuple[str, ...] = tuple(n for n, o in OPTIONS.items() if o.stage == "load")
PREDICT_OPTIONS: tuple[str, ...] = tuple(n for n, o in OPTIONS.items() if o.stage == "predict")

# Accepted in a Modelfile with a warning and otherwise ignored, as Ollama does.
DEPRECATED_OPTIONS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "numa",
    }
)


def defaults(num_ctx: int) -> dict[str, Any]:
    """Every option at its default, with the configured context length."""
    values = {name: option.default for name, option in OPTIONS.items()}
    values["num_ctx"] = num_ctx
    values["stop"] = []
    return values


class OptionError(ValueError):
    """An option value of the wrong type or an unknown parameter; the message names it."""


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


def format_params(params: Mapping[str, list[str]]) -> dict[str, Any]:
    """Ollama's `api.FormatParams`: Modelfile `PARAMETER` strings → typed values.

    Deprecated names are dropped with a warning; unknown names and bad values raise.
    """
    out: dict[str, Any] = {}
    for key, values in params.items():
        if key in DEPRECATED_OPTIONS:
            log.warning("parameter %s is deprecated", key)
            continue
        option = OPTIONS.get(key)
        if option is None:
            raise OptionError(f"unknown parameter '{key}'")
        kind = option.kind
        first = values[0]
        if kind == "strings":
            out[key] = list(values)
        elif kind == "int":
            try:
                out[key] = int(first, 10)
            except ValueError:
                raise OptionError(f"invalid int value {_go_list(values)}") from None
        elif kind == "float":
            try:
                out[key] = float(first)
            except ValueError:
                raise OptionError(f"invalid float value {_go_list(values)}") from None
        else:
            value = go_parse_bool(first)
            if value is None:
                raise OptionError(f"invalid bool value {_go_list(values)}")
            out[key] = value
    return out


def check_option_value(key: str, value: Any) -> Any:
    """Validate one option from JSON (API `options`, params layer); returns the value to use.

    The message names the option and the expected type, as Ollama's `Options.FromMap` does.
    """
    kind = OPTION_KINDS[key]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f'option "{key}" must be of type integer')
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f'option "{key}" must be of type float32')
        return float(value)
    if kind == "bool":
        if value is None and key == "use_mmap":
            return None
        if not isinstance(value, bool):
            raise OptionError(f'option "{key}" must be of type boolean')
        return value
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise OptionError(f'option "{key}" must be of type array')
    if not all(isinstance(v, str) for v in value):
        raise OptionError(f'option "{key}" must be of an array of strings')
    return list(value)


def _shown(value: int) -> str:
    # A client can send a 4,000-digit number; the message need not echo all of it.
    text = str(value)
    return text if len(text) <= 24 else text[:20] + "..."


def check_option(key: str, value: Any) -> Any:
    """One known option from JSON: Ollama's type check, then the table's range."""
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f'option "{key}" must be a finite number')
    try:
        checked = check_option_value(key, value)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, OptionError):
            raise
        raise OptionError(f'option "{key}" is out of range') from None
    option = OPTIONS[key]
    low, high = option.minimum, option.maximum
    if option.kind == "int":
        assert isinstance(checked, int) and low is not None and high is not None
        if checked < low:
            raise OptionError(f'option "{key}" must be >= {int(low)}, got {_shown(checked)}')
        if checked > high:
            raise OptionError(f'option "{key}" must be <= {int(high)}, got {_shown(checked)}')
    elif option.kind == "float":
        assert isinstance(checked, float) and low is not None and high is not None
        if not math.isfinite(checked) or abs(checked) > FLOAT32_MAX:
            raise OptionError(f'option "{key}" must be a finite number')
        if (low, high) == (0.0, 1.0) and not low <= checked <= high:
            raise OptionError(f'option "{key}" must be between 0 and 1, got {checked:g}')
        if checked < low:
            raise OptionError(f'option "{key}" must be >= {low:g}, got {checked:g}')
    return checked
