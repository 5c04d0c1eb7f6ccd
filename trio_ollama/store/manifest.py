"""Manifest and config-blob schema (Ollama v0.12.10's `server/manifest.go`), byte-compatible with
Ollama's files.

Everything here reads files another program (or a registry, or a damaged disk) wrote: each is
decoded as Go's `encoding/json` decodes it into Ollama's types, so a value of the wrong type is
refused here, with Go's own text, and never reaches the code that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.decode import (
    INT,
    MAP_ANY,
    STRING,
    GoType,
    go_field,
    slice_of,
    struct,
    struct_type,
)
from trio_ollama.gocompat.encode import GoStruct
from trio_ollama.store.layout import InvalidDigestError, normalize_digest
from trio_ollama.templates import Message

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_PROMPT = "application/vnd.ollama.image.prompt"  # legacy name of the template layer
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"


class ManifestError(ValueError):
    """A manifest, config blob or layer that cannot be parsed; the message says why."""


# Ollama's types, as `encoding/json` sees them (their Go names are those in Go's messages);
# a manifest's and a layer's are declared by `Manifest` and `Layer`.
_CONFIG_STRINGS = (
    "model_format", "model_family", "model_type", "file_type", "renderer", "parser",
    "requires", "remote_host", "remote_model", "base_name", "architecture", "os",
)  # fmt: skip
_CONFIG = struct(
    "model.ConfigV2",
    **dict.fromkeys(_CONFIG_STRINGS, STRING),
    model_families=slice_of(STRING),
    capabilities=slice_of(STRING),
    context_length=INT,
    embedding_length=INT,
    rootfs=struct("model.RootFS", type=STRING, diff_ids=slice_of(STRING)),
)
_MESSAGES = slice_of(struct("api.Message", role=STRING, content=STRING))


def _decode(raw: bytes, go_type: GoType, what: str) -> Any:
    """`raw` decoded into `go_type` as Go would (its first type error, its UTF-8 repair, its
    limits); `null` is `None`. Anything Go refuses is a `ManifestError` naming `what`."""
    try:
        value = go.loads(raw)
        go.check(go_type, value)
    except go.DecodeError as exc:
        raise ManifestError(f"{what}: {exc}") from None
    return value


def _digest(value: str, what: str) -> str:
    try:
        return normalize_digest(value)
    except InvalidDigestError as exc:
        raise ManifestError(f"{what}: {exc}") from None


def layer_text(raw: bytes) -> str:
    """A text layer (template, system, license) as Ollama holds it: Go strings carry any bytes,
    and what is not UTF-8 reaches a client as U+FFFD, so it does here."""
    return raw.decode("utf-8", errors="replace")


def parse_params(raw: bytes) -> dict[str, Any]:
    """A params layer: a JSON object of options (their values are checked where they are used,
    as a request's `options` are)."""
    params = _decode(raw, MAP_ANY, "params layer")
    return {} if params is None else params


def parse_messages(raw: bytes) -> tuple[Message, ...]:
    """A messages layer: a JSON array of `{role, content}` objects (null and absent read as
    Go's zero values)."""
    messages = _decode(raw, _MESSAGES, "messages layer") or []
    return tuple(
        Message((m or {}).get("role") or "", (m or {}).get("content") or "") for m in messages
    )


@attrs.frozen
class Layer(GoStruct):
    GO_NAME: ClassVar[str] = "manifest.Layer"

    media_type: str = go_field(STRING, json="mediaType")
    digest: str = go_field(STRING)
    size: int = go_field(GoType("int", "int64"))
    from_: str = go_field(STRING, default="", json="from", omitempty=True)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, *, config: bool = False) -> Layer:
        """A layer already checked against `_LAYER`. Its digest becomes a file name, so it must
        be one; only the config may have none (Ollama's rule)."""
        data = data or {}
        digest = data.get("digest") or ""
        what = "config" if config else f"layer {data.get('mediaType') or ''}".rstrip()
        return cls(
            media_type=data.get("mediaType") or "",
            digest=_digest(digest, what) if digest or not config else "",
            size=data.get("size") or 0,
            from_=data.get("from") or "",
        )


_LAYER = struct_type(Layer)


@attrs.frozen(kw_only=True)
class Manifest(GoStruct):
    GO_NAME: ClassVar[str] = "manifest.Manifest"

    schema_version: int = go_field(INT, default=2, json="schemaVersion")
    media_type: str = go_field(STRING, default=MANIFEST_MEDIA_TYPE, json="mediaType")
    config: Layer = go_field(_LAYER)
    layers: tuple[Layer, ...] = go_field(slice_of(_LAYER))

    @property
    def size(self) -> int:
        """Ollama's `Manifest.Size()`: every layer plus the config."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def layers_of(self, *media_types: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type in media_types]

    def digests(self) -> set[str]:
        return {self.config.digest} | {layer.digest for layer in self.layers}

    def to_bytes(self) -> bytes:
        return gojson.encode(self.go_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        data = _decode(raw, struct_type(Manifest), "manifest")
        if not data or data.get("config") is None:
            raise ManifestError("manifest has no config")
        return cls(
            config=Layer.from_json(data["config"], config=True),
            layers=tuple(Layer.from_json(layer) for layer in data.get("layers") or ()),
            schema_version=2 if data.get("schemaVersion") is None else data["schemaVersion"],
            media_type=data.get("mediaType") or MANIFEST_MEDIA_TYPE,
        )


@attrs.frozen(kw_only=True)
class ModelConfig:
    """Ollama's `ConfigV2`. Unknown keys read from disk are kept and written back."""

    model_format: str = ""
    model_family: str = ""
    model_families: tuple[str, ...] | None = None
    model_type: str = ""
    file_type: str = ""
    renderer: str = ""
    parser: str = ""
    context_length: int = 0
    embedding_length: int = 0
    architecture: str = "amd64"
    os: str = "linux"
    diff_ids: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()

    def details(self) -> dict[str, Any]:
        """The `details` object of `/api/tags`, `/api/show` and `/api/ps`."""
        families = None if self.model_families is None else list(self.model_families)
        return {
            "parent_model": "",
            "format": self.model_format,
            "family": self.model_family,
            "families": families,
            "parameter_size": self.model_type,
            "quantization_level": self.file_type,
        }

    def with_layers(self, layers: Sequence[Layer]) -> ModelConfig:
        return attrs.evolve(self, diff_ids=tuple(layer.digest for layer in layers))

    def to_bytes(self) -> bytes:
        # Not a plain encoding: unknown keys read from disk go back between the known ones.
        data: dict[str, Any] = {
            "model_format": self.model_format,
            "model_family": self.model_family,
            "model_families": None if self.model_families is None else list(self.model_families),
            "model_type": self.model_type,
            "file_type": self.file_type,
        }
        for key in ("renderer", "parser"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        for key in ("context_length", "embedding_length"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        data.update(self.extra)
        data["architecture"] = self.architecture
        data["os"] = self.os
        data["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        return gojson.encode(data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ModelConfig:
        data = _decode(raw, _CONFIG, "config") or {}
        known = {
            "model_format", "model_family", "model_families", "model_type", "file_type",
            "renderer", "parser", "context_length", "embedding_length", "architecture", "os",
            "rootfs",
        }  # fmt: skip
        families = data.get("model_families")
        rootfs = data.get("rootfs") or {}
        # A string inside a list may be null, which Go reads as "".
        return cls(
            model_format=data.get("model_format") or "",
            model_family=data.get("model_family") or "",
            model_families=None if families is None else tuple(f or "" for f in families),
            model_type=data.get("model_type") or "",
            file_type=data.get("file_type") or "",
            renderer=data.get("renderer") or "",
            parser=data.get("parser") or "",
            context_length=data.get("context_length") or 0,
            embedding_length=data.get("embedding_length") or 0,
            architecture=data.get("architecture") or "amd64",
            os=data.get("os") or "linux",
            diff_ids=tuple(d or "" for d in rootfs.get("diff_ids") or ()),
            extra=tuple((k, v) for k, v in data.items() if k not in known),
        )
