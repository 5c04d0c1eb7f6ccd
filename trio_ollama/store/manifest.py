"""Manifest and config-blob schema (reference §2.3), byte-compatible with Ollama's files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs

from trio_ollama.gocompat import gojson

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
    """A manifest or config blob that cannot be parsed."""


@attrs.frozen
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.from_:
            out["from"] = self.from_
        return out

    @classmethod
    def from_json(cls, data: Any) -> Layer:
        if not isinstance(data, dict):
            raise ManifestError("layer is not an object")
        try:
            return cls(
                media_type=str(data["mediaType"]),
                digest=str(data["digest"]),
                size=int(data["size"]),
                from_=str(data.get("from", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad layer: {exc}") from exc


@attrs.frozen
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE

    @property
    def size(self) -> int:
        """Ollama's `Manifest.Size()`: every layer plus the config."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def layers_of(self, *media_types: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type in media_types]

    def digests(self) -> set[str]:
        return {self.config.digest} | {layer.digest for layer in self.layers}

    def to_bytes(self) -> bytes:
        return gojson.encode(
            {
                "schemaVersion": self.schema_version,
                "mediaType": self.media_type,
                "config": self.config.to_json(),
                "layers": [layer.to_json() for layer in self.layers],
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(data, dict) or "config" not in data:
            raise ManifestError("manifest has no config")
        return cls(
            config=Layer.from_json(data["config"]),
            layers=tuple(Layer.from_json(layer) for layer in data.get("layers") or ()),
            schema_version=int(data.get("schemaVersion", 2)),
            media_type=str(data.get("mediaType", MANIFEST_MEDIA_TYPE)),
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
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"config blob is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError("config blob is not an object")
        known = {
            "model_format", "model_family", "model_families", "model_type", "file_type",
            "renderer", "parser", "context_length", "embedding_length", "architecture", "os",
            "rootfs",
        }  # fmt: skip
        families = data.get("model_families")
        rootfs = data.get("rootfs") or {}
        return cls(
            model_format=str(data.get("model_format") or ""),
            model_family=str(data.get("model_family") or ""),
            model_families=None if families is None else tuple(map(str, families)),
            model_type=str(data.get("model_type") or ""),
            file_type=str(data.get("file_type") or ""),
            renderer=str(data.get("renderer") or ""),
            parser=str(data.get("parser") or ""),
            context_length=int(data.get("context_length") or 0),
            embedding_length=int(data.get("embedding_length") or 0),
            architecture=str(data.get("architecture") or "amd64"),
            os=str(data.get("os") or "linux"),
            diff_ids=tuple(map(str, rootfs.get("diff_ids") or ())),
            extra=tuple((k, v) for k, v in data.items() if k not in known),
        )
