"""`create`, planned: the layers of a new model from GGUF blobs, a base model and Modelfile
settings. `plan_model` checks everything and reads the store but writes nothing; `Store.create`
writes each new blob, then the config blob, and last the manifest (one atomic rename). Until that
rename nothing a reader can see has changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import attrs

from trio_ollama.gguf_info import GGUFError, GGUFInfo, gguf_info_cached, is_gguf
from trio_ollama.gocompat import gojson
from trio_ollama.names import ModelName, parse_name
from trio_ollama.store.errors import CreateError, ModelNotFoundError
from trio_ollama.store.layout import InvalidDigestError, digest_bytes, normalize_digest
from trio_ollama.store.manifest import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_PROMPT,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
    ManifestError,
    ModelConfig,
    parse_params,
)
from trio_ollama.store.modelfile import CreateRequest
from trio_ollama.templates import TemplateError, parse_template
from trio_ollama.templates.select import select_builtin

Progress = Callable[[str], None]


class _BaseModel(Protocol):
    @property
    def manifest(self) -> Manifest: ...
    @property
    def config(self) -> ModelConfig: ...


class Blobs(Protocol):
    """What planning reads from the store."""

    def blob_path(self, digest: str) -> Path: ...
    def read_blob(self, digest: str) -> bytes: ...
    def show(self, name: str) -> _BaseModel: ...


@attrs.frozen
class ModelPlan:
    """A checked model: its layers and config, and the blobs to write before its manifest."""

    name: ModelName
    layers: tuple[Layer, ...]
    config: ModelConfig
    new_blobs: tuple[tuple[str, bytes], ...]


def is_valid_relative_path(path: str) -> bool:
    """Go's `fs.ValidPath` for a non-root file: no empty, `.` or `..` elements, no leading `/`."""
    if not path or "\\" in path or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _gguf_media_type(info: GGUFInfo) -> str:
    if info.kind == "adapter":
        return MEDIA_ADAPTER
    if info.kind == "projector" or (not info.block_count and info.get("clip.vision.block_count")):
        return MEDIA_PROJECTOR
    return MEDIA_MODEL


class _Builder:
    def __init__(self, store: Blobs, progress: Progress) -> None:
        self.store = store
        self.progress = progress
        self.layers: list[Layer] = []
        self.config = ModelConfig()
        self.new_blobs: list[tuple[str, bytes]] = []
        self.chat_template: str | None = None

    def blob_layer(self, digest: str, media: str) -> Layer:
        path = self.store.blob_path(digest)
        if not path.is_file():
            raise CreateError(f'blob "{digest}" not found; upload it with POST /api/blobs first')
        return Layer(media, normalize_digest(digest), path.stat().st_size, str(path))

    def gguf_layer(self, digest: str, adapter: bool = False) -> None:
        layer = self.blob_layer(digest, MEDIA_MODEL)
        path = self.store.blob_path(digest)
        if not is_gguf(path):
            raise CreateError("supplied file was not in GGUF format")
        try:
            info = gguf_info_cached(path)
        except GGUFError as exc:
            raise CreateError(str(exc)) from exc
        media = MEDIA_ADAPTER if adapter else _gguf_media_type(info)
        self.layers.append(Layer(media, layer.digest, layer.size, layer.from_))
        if media == MEDIA_MODEL:
            self.chat_template = info.chat_template
            self.config = ModelConfig(
                model_format="gguf",
                model_family=info.architecture,
                model_families=(info.architecture,),
                model_type=info.parameter_size,
                file_type=info.file_type_name,
            )
        elif media == MEDIA_PROJECTOR and self.config.model_families is not None:
            families = self.config.model_families
            if info.architecture not in families:
                families = (*families, info.architecture)
            self.config = attrs.evolve(self.config, model_families=families)

    def text_layer(self, media: str, data: bytes) -> Layer:
        digest, size = self._stage(data)
        return Layer(media, digest, size)

    def _stage(self, data: bytes) -> tuple[str, int]:
        digest = digest_bytes(data)
        self.new_blobs.append((digest, data))
        return digest, len(data)

    def layers_of(self, *media: str) -> list[Layer]:
        return [x for x in self.layers if x.media_type in media]

    def replace(self, media: tuple[str, ...], layer: Layer | None) -> None:
        self.layers = [x for x in self.layers if x.media_type not in media]
        if layer is not None:
            self.layers.append(layer)


def _base_params(store: Blobs, layers: list[Layer]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer.media_type == MEDIA_PARAMS:
            try:
                existing = parse_params(store.read_blob(layer.digest))
            except ManifestError as exc:
                raise CreateError(f"base model {exc}") from exc
            for key, value in existing.items():
                merged.setdefault(key, value)
    return merged


def plan_model(
    store: Blobs, name: str | ModelName, request: CreateRequest, progress: Progress
) -> ModelPlan:
    parsed = parse_name(name) if isinstance(name, str) else name
    if not parsed.is_valid:
        raise CreateError("invalid model name")
    for file_name in [*request.files, *request.adapters]:
        if not is_valid_relative_path(file_name):
            raise CreateError("file path must be relative")
    for digest in [*request.files.values(), *request.adapters.values()]:
        try:
            normalize_digest(digest)
        except InvalidDigestError:
            raise CreateError(f"invalid digest {digest!r}") from None
    if not request.from_ and not request.files:
        raise CreateError("neither 'from' or 'files' was specified")

    builder = _Builder(store, progress)
    if request.from_:
        try:
            base = store.show(request.from_)
        except ModelNotFoundError:
            raise CreateError(f"base model '{request.from_}' not found") from None
        builder.layers = list(base.manifest.layers)
        builder.config = base.config
    if request.files:
        ggufs = [d for f, d in request.files.items() if f.endswith(".gguf")]
        if not ggufs:
            ggufs = [d for d in request.files.values() if is_gguf(store.blob_path(d))]
        if not ggufs:
            raise CreateError("supplied file was not in GGUF format")
        progress("parsing GGUF")
        builder.layers = [x for x in builder.layers if x.media_type != MEDIA_MODEL]
        for digest in ggufs:
            builder.gguf_layer(digest)
    if len(request.adapters) > 1:
        raise CreateError("only one adapter is currently supported")
    for digest in request.adapters.values():
        builder.gguf_layer(digest, adapter=True)

    # As Ollama: a create names a built-in renderer or parser, or keeps the base model's.
    if request.renderer:
        builder.config = attrs.evolve(builder.config, renderer=request.renderer)
    if request.parser:
        builder.config = attrs.evolve(builder.config, parser=request.parser)
    params = dict(request.parameters)
    has_template = bool(builder.layers_of(MEDIA_TEMPLATE, MEDIA_PROMPT))
    if request.template is None and not has_template and builder.chat_template:
        # As Ollama does on import: the built-in Go template closest to the GGUF's Jinja one.
        builtin = select_builtin(builder.chat_template)
        if builtin is not None:
            progress(f"using autodetected template {builtin.name}")
            builder.layers.append(builder.text_layer(MEDIA_TEMPLATE, builtin.template.encode()))
            for key, value in (builtin.params_layer() or {}).items():
                if value is not None:
                    params.setdefault(key, value)
    if request.template is not None:
        try:
            parse_template(request.template)
        except TemplateError as exc:
            raise CreateError(f"template error: {exc}") from exc
        builder.replace(
            (MEDIA_TEMPLATE, MEDIA_PROMPT),
            builder.text_layer(MEDIA_TEMPLATE, request.template.encode()),
        )
    if request.system is not None:
        builder.replace((MEDIA_SYSTEM,), builder.text_layer(MEDIA_SYSTEM, request.system.encode()))
    for text in request.license:
        builder.layers.append(builder.text_layer(MEDIA_LICENSE, text.encode()))
    for key, value in _base_params(store, builder.layers).items():
        params.setdefault(key, value)
    if params:
        data = gojson.encode(dict(sorted(params.items())))
        builder.replace((MEDIA_PARAMS,), builder.text_layer(MEDIA_PARAMS, data))
    if request.messages is not None:
        data = gojson.encode([m.go_json() for m in request.messages])
        builder.replace((MEDIA_MESSAGES,), builder.text_layer(MEDIA_MESSAGES, data))

    return ModelPlan(parsed, tuple(builder.layers), builder.config, tuple(builder.new_blobs))
