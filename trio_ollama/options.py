"""Ollama's model options: names, kinds and defaults (reference §1.14).

One table serves the Modelfile (`PARAMETER` strings), the params layer and the API's `options`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from trio_ollama.config import go_parse_bool

log = logging.getLogger(__name__)

Kind = Literal["int", "float", "bool", "strings"]

# Options that are fixed when a runner loads; changing one needs a reload (reference §4.3).
RUNNER_OPTIONS: dict[str, Kind] = {
    "num_ctx": "int",
    "num_batch": "int",
    "num_gpu": "int",
    "main_gpu": "int",
    "use_mmap": "bool",
    "num_thread": "int",
}
PREDICT_OPTIONS: dict[str, Kind] = {
    "num_keep": "int",
    "seed": "int",
    "num_predict": "int",
    "top_k": "int",
    "top_p": "float",
    "min_p": "float",
    "typical_p": "float",
    "repeat_last_n": "int",
    "temperature": "float",
    "repeat_penalty": "float",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "stop": "strings",
}
OPTION_KINDS: dict[str, Kind] = {**RUNNER_OPTIONS, **PREDICT_OPTIONS}

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

DEFAULTS: dict[str, Any] = {
    "num_batch": 512,
    "num_gpu": -1,
    "main_gpu": 0,
    "use_mmap": None,
    "num_thread": 0,
    "num_keep": 4,
    "seed": -1,
    "num_predict": -1,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_last_n": 64,
    "temperature": 0.8,
    "repeat_penalty": 1.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "stop": [],
}


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
        kind = OPTION_KINDS.get(key)
        if kind is None:
            raise OptionError(f"unknown parameter '{key}'")
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
