"""The store's side of the native API: list, show, running models, copy, delete, blobs, create,
and preloading a model the configuration names."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from trio_ollama.api.access import ModelAccess, merge_options, runner_options_of
from trio_ollama.api.errors import APIError, store_error
from trio_ollama.api.schemas import CopyRequest, CreateJSON, DeleteRequest, ShowRequest
from trio_ollama.api.timefmt import FOREVER_SECONDS, local_time
from trio_ollama.gguf_info import (
    ArraySummary,
    GGUFError,
    GGUFInfo,
    gguf_info_cached,
    read_gguf_info,
)
from trio_ollama.gocompat.gojson import quote as go_quote
from trio_ollama.names import ModelName, parse_name
from trio_ollama.scheduler import Runner
from trio_ollama.specs import embedding_only
from trio_ollama.store import ModelDetails, ModelNotFoundError, StoreError
from trio_ollama.store.layout import InvalidDigestError, normalize_digest

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@attrs.define
class ModelAdmin(ModelAccess):
    async def preload(self, name: str) -> None:
        """Load `name` in the background, with its Modelfile's options, and keep it loaded
        through crashes (`preload` in the configuration file). A model that cannot be found or
        read is logged, and the server goes on without it."""
        try:
            details = await self.details(name, not_found="model '{name}' not found")
            spec = await self.spec(details)
        except APIError as exc:
            log.error("cannot preload model", extra={"model": name, "error": exc.message})
            return
        except Exception:  # an unreadable store must not stop the server starting
            log.exception("cannot preload model", extra={"model": name})
            return
        options = merge_options(details, {}, self.settings.context_length)
        self.scheduler.keep_loaded(spec, runner_options_of(options))

    async def tags(self) -> dict[str, Any]:
        entries = await self._thread(self.store.list)
        return {
            "models": [
                {
                    "name": e.name.display_shortest,
                    "model": e.name.display_shortest,
                    "modified_at": local_time(e.modified_at),
                    "size": e.size,
                    "digest": e.digest,
                    "details": e.config.details(),
                }
                for e in entries
            ]
        }

    async def show(self, req: ShowRequest) -> dict[str, Any]:
        if not req.model:
            raise APIError(400, "model is required")
        details = await self.details(req.model, not_found="model '{name}' not found")
        model = await self.prompt_of(details)  # kept from before, or parsed in a worker thread
        out: dict[str, Any] = {}
        if details.license:
            out["license"] = "\n".join(details.license)
        out["modelfile"] = details.modelfile()
        params = format_parameters(details.parameters)
        if params:
            out["parameters"] = params
        template = details.template if details.template is not None else model.jinja
        if template:
            out["template"] = template
        system = req.system or details.system
        if system:
            out["system"] = system
        out["details"] = details.config.details()
        if details.messages:
            out["messages"] = [m.go_json() for m in details.messages]
        out["model_info"] = await self._thread(_model_info, details, req.verbose)
        if details.projectors:  # Ollama shows the first projector's metadata alone
            out["projector_info"] = await self._thread(
                _gguf_metadata, details.projectors[0], None, req.verbose
            )
        if req.verbose and details.model_path is not None:
            info = details.gguf
            assert info is not None
            out["tensors"] = [
                {"name": t.name, "type": t.ggml_type, "shape": list(t.shape)} for t in info.tensors
            ]
        out["capabilities"] = model.capabilities
        out["modified_at"] = local_time(details.modified_at)
        if details.gguf is not None:
            out["policy"] = self._policy(
                details.name.display_shortest, embedding_only(details.gguf)
            )
        return out

    async def ps(self) -> dict[str, Any]:
        now_wall, now_trio = time.time(), trio.current_time()
        models = []
        for runner in self.scheduler.running():
            expires = runner.expires_at
            if math.isinf(expires):
                remaining = runner.keep_alive if math.isfinite(runner.keep_alive) else None
                wall = now_wall + (FOREVER_SECONDS if remaining is None else remaining)
            else:
                wall = now_wall + (expires - now_trio)
            models.append(
                {
                    "name": runner.model.name,
                    "model": runner.model.name,
                    "size": runner.size,
                    "digest": runner.model.digest,
                    "details": runner.model.details,
                    "expires_at": local_time(wall),
                    "size_vram": runner.vram_size,
                    "context_length": runner.num_ctx,
                    # Beyond Ollama's fields (its clients ignore them): the queue, per model.
                    "requests_running": runner.refcount,
                    "requests_waiting": self.scheduler.waiting_by_key.get(runner.model.key, 0),
                    "num_parallel": runner.num_parallel,
                    "policy": self._policy(runner.model.name, runner.model.embedding_only, runner),
                }
            )
        return {"models": models}

    def _policy(
        self, name: str, embedding_only: bool, runner: Runner | None = None
    ) -> dict[str, Any]:
        """The scheduling settings that apply to model `name` (docs/policies.md), as a loaded
        `runner` has them. Keep-alive in seconds, -1 for ever."""
        applies = self.scheduler.effective_policy(name, embedding_only)
        if runner is not None:
            applies = attrs.evolve(
                applies,
                num_parallel=runner.num_parallel,
                keep_alive=runner.keep_alive,
                pinned=runner.pinned,
            )
        out = attrs.asdict(applies)
        if out["keep_alive"] is not None and math.isinf(out["keep_alive"]):
            out["keep_alive"] = -1
        return out

    async def copy(self, req: CopyRequest) -> None:
        source, destination = req.source, req.destination
        if not parse_name(source).is_valid:
            raise APIError(400, f'source "{source}" is invalid')
        if not parse_name(destination).is_valid:
            raise APIError(400, f'destination "{destination}" is invalid')
        copied = await self._in_store(
            f'model "{source}" not found', self.store.copy, source, destination
        )
        self.metrics.created(copied.display_shortest)

    async def delete(self, req: DeleteRequest) -> None:
        if not parse_name(req.model).is_valid:
            raise APIError(400, f'name "{req.model}" is invalid')

        def remove() -> ModelName:
            found = self.store.resolve(req.model)  # as stored: the name its series carry
            self.store.delete(found)
            return found

        removed = await self._in_store(f"model '{req.model}' not found", remove)
        self.metrics.deleted(removed.display_shortest)

    async def _in_store(self, not_found: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Store work in a worker thread; a model not found is a 404 saying `not_found`."""
        try:
            return await self._thread(fn, *args)
        except ModelNotFoundError:
            raise APIError(404, not_found) from None
        except StoreError as exc:
            raise store_error(exc) from exc

    async def blob_exists(self, digest: str) -> bool:
        try:
            normalize_digest(digest)
        except InvalidDigestError:
            raise APIError(400, "invalid digest format") from None
        return await self._thread(self.store.has_blob, digest)

    @trio.as_safe_channel
    async def create(self, req: CreateJSON) -> AsyncGenerator[dict[str, Any], None]:
        name: ModelName = parse_name(req.model)
        if not name.is_valid:
            raise APIError(400, "invalid model name")
        request = req.to_store_request()
        statuses: list[str] = []
        # The work runs to its end in a thread, then its statuses go out: a yield inside a
        # nursery (to stream them live) would break if the client left half-way. Blobs are
        # uploaded beforehand, so a create takes milliseconds.
        try:
            await self._thread(self.store.create, name, request, statuses.append)
        except StoreError as exc:
            if not statuses:
                raise store_error(exc) from exc
            failure: APIError | None = store_error(exc)
        except (GGUFError, ValueError) as exc:
            if not statuses:
                raise APIError(400, str(exc)) from exc
            failure = APIError(400, str(exc))
        else:
            failure = None
            self.metrics.created(name.display_shortest)
        for status in statuses:
            yield {"status": status}
        if failure is not None:
            raise failure


def format_parameters(params: dict[str, Any]) -> str:
    """`/api/show`'s parameters: `%-30s %#v` per value, one line per stop string."""
    lines = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {_go_value(v)}")
    return "\n".join(lines)


def _go_value(value: Any) -> str:
    """Go's `%#v` of a value `encoding/json` decoded into `any` (a params layer holds any)."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(map(_go_value, value)) + "}"
    if isinstance(value, dict):
        items = (f"{go_quote(k)}:{_go_value(v)}" for k, v in sorted(value.items()))
        return "map[string]interface {}{" + ", ".join(items) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _model_info(details: ModelDetails, verbose: bool) -> dict[str, Any]:
    if details.model_path is None:
        return {}
    return _gguf_metadata(details.model_path, details.gguf, verbose)


def _gguf_metadata(path: Path, info: GGUFInfo | None, verbose: bool) -> dict[str, Any]:
    """A GGUF's metadata as `/api/show` lists it (`info`: its header, when already read)."""
    if verbose:
        info = read_gguf_info(path, array_limit=None)
    elif info is None:
        info = gguf_info_cached(path)
    out: dict[str, Any] = {}
    for key, value in sorted(info.metadata.items()):
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        if isinstance(value, ArraySummary) or (isinstance(value, list) and len(value) > 5):
            value = value if verbose and isinstance(value, list) else []
        out[key] = value
    out["general.parameter_count"] = info.parameter_count
    return out
