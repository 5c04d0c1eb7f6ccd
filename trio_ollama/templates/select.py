"""Ollama's built-in Go templates, and its rule for picking one for a GGUF's Jinja template.

When a GGUF is imported, Ollama compares its `tokenizer.chat_template` with every Jinja template
in `builtin/index.json`, takes the entry at the smallest Levenshtein distance (the first one on a
tie) and uses that entry's Go template when the distance is under 100 (Ollama's `template.Named`,
`template/template.go`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

import attrs

__all__ = [
    "MAX_DISTANCE",
    "BuiltinTemplate",
    "builtin_names",
    "builtin_template",
    "levenshtein",
    "select_builtin",
]

log = logging.getLogger(__name__)

# A Jinja template is matched only when its distance to an index entry is below this.
MAX_DISTANCE: Final = 100


@attrs.frozen
class BuiltinTemplate:
    """A built-in template: its name, Go template text and default parameters (`NAME.json`)."""

    name: str
    template: str
    parameters: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(self.parameters.get("stop") or ())

    def params_layer(self) -> dict[str, Any] | None:
        """The params layer Ollama writes with an auto-detected template: only `stop` survives,
        because Ollama decodes `NAME.json` into a struct holding nothing else (so gemma3's
        `temperature` is dropped). None when there is no `NAME.json`.
        """
        if not self.parameters:
            return None
        return {"stop": list(self.stop) if "stop" in self.parameters else None}


def _builtin_dir() -> Any:
    return resources.files("trio_ollama.templates").joinpath("builtin")


@functools.cache
def _index() -> tuple[tuple[str, str], ...]:
    """(name, Jinja template) pairs from `index.json`, in file order."""
    raw = json.loads(_builtin_dir().joinpath("index.json").read_text(encoding="utf-8"))
    return tuple((str(e["name"]), str(e["template"])) for e in raw)


def builtin_names() -> list[str]:
    """The names of the built-in templates that `index.json` refers to, sorted."""
    return sorted({name for name, _ in _index()})


@functools.cache
def builtin_template(name: str) -> BuiltinTemplate:
    """Load one built-in template by name; `KeyError` if there is none."""
    folder = _builtin_dir()
    source = folder.joinpath(f"{name}.gotmpl")
    if "/" in name or "\\" in name or not source.is_file():
        raise KeyError(name)
    # Ollama normalises line endings of its embedded templates.
    text = source.read_text(encoding="utf-8").replace("\r\n", "\n")
    params_file = folder.joinpath(f"{name}.json")
    params: dict[str, Any] = {}
    if params_file.is_file():
        params = json.loads(params_file.read_text(encoding="utf-8"))
    return BuiltinTemplate(name, text, params)


def levenshtein(a: str, b: str, limit: int | None = None) -> int:
    """Edit distance between `a` and `b` counted in code points (as Ollama counts runes).

    With `limit`, the result is exact when it is below `limit`; otherwise it is some value at or
    above `limit`, returned as soon as that is certain. Uses Myers' bit-parallel algorithm, with
    one Python integer as the bit vector, so a long pair costs one loop step per character of the
    shorter string.
    """
    pattern, text = (a, b) if len(a) >= len(b) else (b, a)
    m, n = len(pattern), len(text)
    if n == 0:
        return m
    if limit is not None and m - n >= limit:
        return m - n
    masks: dict[str, int] = {}
    for i, ch in enumerate(pattern):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = full, 0, m
    for j, ch in enumerate(text):
        eq = masks.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
        if limit is not None:
            # Each remaining character lowers the distance by at most one.
            bound = score - (n - 1 - j)
            if bound >= limit:
                return bound
    return score


def select_builtin(jinja_template: str) -> BuiltinTemplate | None:
    """The built-in template Ollama substitutes for a GGUF's Jinja chat template, if any."""
    if not jinja_template:
        return None
    best_name: str | None = None
    best = MAX_DISTANCE
    for name, candidate in _index():
        distance = levenshtein(jinja_template, candidate, limit=best)
        if distance < best:
            best, best_name = distance, name
    if best_name is None:
        log.debug("no built-in template within distance %d", MAX_DISTANCE)
        return None
    log.debug("matched built-in template %s at distance %d", best_name, best)
    return builtin_template(best_name)
