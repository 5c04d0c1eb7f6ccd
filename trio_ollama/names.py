"""Model names as Ollama parses them (its `types/model/name.go`): `[host/][namespace/]model[:tag]`.

A valid `ModelName` can only contain characters that are safe as path components, so it can never
escape the store directory: no separators, no `..` (a part must start with a letter, digit or
underscore), no NUL, no absolute path.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import attrs

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_MISSING = "!MISSING!"

_HOST, _NAMESPACE, _MODEL, _TAG = range(4)


class InvalidNameError(ValueError):
    """A model name that Ollama would call invalid."""


def _is_word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


# Ollama allows a 350-character host, but every part is a directory or file name in the store,
# and no common file system takes names over 255 bytes (nor does DNS, over 253): such a name
# could never be stored, so it is invalid here rather than an OS error later.
_NAME_MAX = 255


def _is_valid_part(kind: int, part: str) -> bool:
    limit = _NAME_MAX if kind == _HOST else 80
    if not 1 <= len(part) <= limit or not _is_word_char(part[0]):
        return False
    for c in part[1:]:
        if c in "_-" or _is_word_char(c):
            continue
        if c == "." and kind != _NAMESPACE:
            continue
        if c == ":" and kind == _HOST:
            continue
        return False
    return True


def _cut_promised(s: str, sep: str) -> tuple[str, str, bool]:
    before, found, after = s.rpartition(sep)
    if not found:
        return s, "", False
    return before or _MISSING, after or _MISSING, True


@attrs.frozen
class ModelName:
    """A name with every part filled in. Build one with `parse_name`; check `is_valid`."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def is_valid(self) -> bool:
        parts = (self.host, self.namespace, self.model, self.tag)
        return all(_is_valid_part(kind, part) for kind, part in enumerate(parts))

    def check(self) -> ModelName:
        if not self.is_valid:
            raise InvalidNameError(f"invalid model name {str(self)!r}")
        return self

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def display_shortest(self) -> str:
        """`llama3.2:latest`, `user/m:tag`, or `host/ns/m:tag`: what `/api/tags` shows."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def relative_path(self) -> PurePosixPath:
        """Where the manifest lives under `manifests/`; only for valid names."""
        self.check()
        return PurePosixPath(self.host, self.namespace, self.model, self.tag)


def parse_name_bare(s: str) -> tuple[str, str, str, str]:
    """Split without defaults: (host, namespace, model, tag), empty where absent."""
    host = namespace = tag = ""
    if s.rfind(":") > s.rfind("/"):
        s, tag, _ = _cut_promised(s, ":")
    s, model, promised = _cut_promised(s, "/")
    if not promised:
        return host, namespace, s, tag
    s, namespace, promised = _cut_promised(s, "/")
    if not promised:
        return host, s, model, tag
    scheme, found, rest = s.partition("://")
    host = rest if found else scheme
    return host, namespace, model, tag


def parse_name(s: str) -> ModelName:
    """Ollama's `ParseName`: fill in defaults. The result may be invalid; see `is_valid`."""
    host, namespace, model, tag = parse_name_bare(s)
    return ModelName(
        host=host or DEFAULT_HOST,
        namespace=namespace or DEFAULT_NAMESPACE,
        model=model,
        tag=tag or DEFAULT_TAG,
    )


def parse_valid_name(s: str) -> ModelName:
    return parse_name(s).check()
