"""Embeddings: `/api/embed` (many inputs, normalized vectors) and the legacy `/api/embeddings`
(one prompt, the vector as the model gives it)."""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio

from trio_ollama.api import records
from trio_ollama.api.access import ModelAccess, merge_options, window_of
from trio_ollama.api.errors import APIError
from trio_ollama.api.schemas import EmbeddingsRequest, EmbedRequest
from trio_ollama.names import parse_name
from trio_ollama.runner.client import RunnerError
from trio_ollama.runner.connection import RunnerConnection
from trio_ollama.runner.window import MARGIN, surely_longer
from trio_ollama.scheduler import ModelSpec


@attrs.define
class Embedding(ModelAccess):
    async def embed(self, req: EmbedRequest) -> dict[str, Any]:
        started = trio.current_time()
        not_found = 'model "{name}" not found, try pulling it first'
        if not req.model or not parse_name(req.model).is_valid:
            raise APIError(404, not_found.format(name=req.model))
        details = await self.details(req.model, not_found=not_found)
        spec = await self.spec(details)
        inputs = list(req.input)
        merged = merge_options(details, req.options, self.settings.context_length)
        options = _embedding_options(spec, merged)
        async with self._leased(spec, options, req.keep_alive) as lease:
            if not inputs or inputs == [""]:
                return {"model": req.model, "embeddings": []}
            vectors: list[list[float]] = []
            count = 0
            for text in inputs:
                # The input is measured against the num_ctx asked for, 0 included.
                text = await _fit_embedding_input(
                    lease.runner, spec, merged["num_ctx"], text, req.truncate
                )
                try:
                    result = await lease.runner.embed(text, truncate=req.truncate)
                except RunnerError as exc:
                    if exc.invalid:  # Ollama's text for embeddings; other refusals as usual
                        raise APIError(400, "input exceeds maximum context length") from exc
                    raise
                count += result.prompt_eval_count
                vectors.append(_normalize(result.embedding, req.dimensions))
            load = lease.load_duration
        self._embedded(spec.name, count)
        out: dict[str, Any] = {"model": req.model, "embeddings": vectors}
        out["total_duration"] = int((trio.current_time() - started) * 1e9)
        if load:
            out["load_duration"] = int(load * 1e9)
        if count:
            out["prompt_eval_count"] = count
        return out

    async def embeddings(self, req: EmbeddingsRequest) -> dict[str, Any]:
        if not req.model or not parse_name(req.model).is_valid:
            raise APIError(400, "model is required")
        details = await self.details(
            req.model, not_found='model "{name}" not found, try pulling it first'
        )
        spec = await self.spec(details)
        merged = merge_options(details, req.options, self.settings.context_length)
        options = _embedding_options(spec, merged)
        async with self._leased(spec, options, req.keep_alive) as lease:
            if not req.prompt:
                return {"embedding": []}
            result = await lease.runner.embed(req.prompt)
        self._embedded(spec.name, result.prompt_eval_count)
        return {"embedding": result.embedding}

    def _embedded(self, model: str, prompt_tokens: int) -> None:
        self.metrics.generated(model, prompt_tokens, 0, 0)
        record = records.current()
        if record is not None:
            record.prompt_tokens = prompt_tokens


def _embedding_options(spec: ModelSpec, merged: dict[str, Any]) -> dict[str, Any]:
    """The options an embedding model is loaded with: `num_ctx: 0` loads it with its own
    context (a completion raises 0 to the runner's minimum instead)."""
    if merged["num_ctx"] == 0 and spec.info.context_length > 0:
        return {**merged, "num_ctx": spec.info.context_length}
    return merged


async def _fit_embedding_input(
    runner: RunnerConnection, spec: ModelSpec, num_ctx: int, text: str, truncate: bool
) -> str:
    """Ollama's rule for an embedding input longer than `min(num_ctx, the model's context)`:
    refused without `truncate`; else cut, keeping room for a BOS and an EOS the tokenizer did
    not add (Ollama's `EmbedHandler`, `server/routes.go`), and refused if nothing is left.
    `num_ctx: 0` leaves no room at all, so any input is refused (v0.12.10's `EmbedHandler`,
    which Ollama's integration test `embed-api-truncate/input_after_truncate_error` expects)."""
    info = spec.info
    window = min(num_ctx, info.context_length) if info.context_length else num_ctx
    bound = window_of(runner)[1]
    if surely_longer(len(text), window + MARGIN, bound):
        text = text[: (window + MARGIN) * bound]  # only its start can be kept
    tokens = await runner.tokenize(text, add_special=False)
    if len(tokens) <= window:
        return text
    if not truncate:
        raise APIError(400, "input exceeds maximum context length")
    # As Ollama reads them: the ids from `tokenizer.ggml.*` (0 when absent), and the "add" flags
    # under the architecture's prefix (`llama.add_bos_token`), which models rarely have: true.
    limit = window
    if tokens[0] != info.get("tokenizer.ggml.bos_token_id", 0) and info.arch_get(
        "add_bos_token", True
    ):
        limit -= 1
    if tokens[-1] != info.get("tokenizer.ggml.eos_token_id", 0) and info.arch_get(
        "add_eos_token", True
    ):
        limit -= 1
    if limit <= 0:
        raise APIError(400, "input after truncation exceeds maximum context length")
    return await runner.detokenize(tokens[:limit])


def _normalize(vector: list[float], dimensions: int | None) -> list[float]:
    def unit(v: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in v))
        return [x / max(norm, 1e-12) for x in v]

    v = unit(vector)
    if dimensions and 0 < dimensions < len(v):
        v = unit(v[:dimensions])
    return v
