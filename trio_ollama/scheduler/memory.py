"""How much memory a model needs, and where it goes: Ollama's estimate, as pure functions.

The numbers follow Ollama's `estimateGPULayers` (llm/memory.go) and `GraphSize`
(fs/ggml/ggml.go) so that a model that fits under Ollama fits here, and the fit decisions the
scheduler takes (full fit on the fewest GPUs, partial fit, CPU fit, system-memory check, VRAM
recovery after an unload) follow `server/sched.go` and `llm/server.go`. The estimate is only a
prediction: once a runner reports what it really allocated, that figure replaces this one.

No I/O and no Trio here; `devices.py` supplies the `GPUInfo` and `SystemMemory` values.
Sizes are bytes, as Python ints (Go's uint64 arithmetic, including its integer division, is
reproduced term by term so the published test figures come out exactly).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trio_ollama.gguf_info import ArraySummary, GGUFInfo
from trio_ollama.gocompat.format import human_bytes2
from trio_ollama.scheduler.devices import LIBRARY_METAL, GPUInfo, SystemMemory

if TYPE_CHECKING:
    from trio_ollama.config import Settings

log = logging.getLogger(__name__)


# KV cache element sizes as (numerator, denominator) bytes, so q4_0's half byte stays exact.
_KV_BYTES: dict[str, tuple[int, int]] = {
    "": (2, 1),
    "f16": (2, 1),
    "q8_0": (1, 1),
    "q4_0": (1, 2),
    "f32": (4, 1),
}
QUANTIZED_KV_CACHE_TYPES = ("q8_0", "q4_0")

# The scheduler's wait after an unload (`waitForVRAMRecovery`): poll this often, give up after
# the timeout, and stop once free VRAM has grown by this share of what the runner held.
RECOVERY_FRACTION = 0.75
RECOVERY_POLL_INTERVAL = 0.25
RECOVERY_TIMEOUT = 5.0

ERR_LOAD_REQUIRED_FULL = "unable to load full model on GPU"


class LoadRequiredFull(Exception):
    """Ollama's `ErrLoadRequiredFull`: it would fit only after evicting something.

    Raised only when a full fit was required (other models are loaded); the scheduler answers it
    by evicting a runner and retrying, so the text rarely reaches a user.
    """

    def __init__(self, message: str = ERR_LOAD_REQUIRED_FULL) -> None:
        super().__init__(message)


class InsufficientSystemMemory(Exception):
    """The part of the model that stays in RAM exceeds free RAM plus free swap: never loadable."""

    def __init__(self, required: int, available: int) -> None:
        self.required = required
        self.available = available
        super().__init__(system_memory_message(required, available))


def system_memory_message(required: int, available: int) -> str:
    return (
        f"model requires more system memory ({human_bytes2(required)}) "
        f"than is available ({human_bytes2(available)})"
    )


# --- model facts the formulas need -------------------------------------------------------------


def _ints(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [int(v) for v in value]
    return [int(value)]


def _per_layer(values: list[int], n: int, default: Callable[[int], int]) -> list[int]:
    """A scalar applies to every layer; a short array is padded, as Ollama pads it."""
    if len(values) == 1:
        return values * n
    return [values[i] if i < len(values) else default(i) for i in range(n)]


def _vocab_size(model: GGUFInfo) -> int:
    # Ollama counts the tokenizer's tokens; fall back to the declared size when they are absent.
    tokens = model.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, ArraySummary):
        return tokens.length
    if isinstance(tokens, list):
        return len(tokens)
    return model.vocab_size


def _group_bytes(model: GGUFInfo, group: str) -> int:
    """Bytes of the tensors named `group.*` (Ollama's layer grouping for non-block tensors)."""
    return sum(t.nbytes for t in model.tensors if t.name.split(".", 1)[0] == group)


def _tensor(model: GGUFInfo, name: str) -> Any:
    return next((t for t in model.tensors if t.name == name), None)


def model_supports_flash_attention(model: GGUFInfo) -> bool:
    """Ollama's `SupportsFlashAttention`: not embedding models, not gemma2, equal K and V heads."""
    if model.arch_get("pooling_type") is not None:
        return False
    if model.architecture == "gemma2":
        return False
    return model.key_length != 0 and model.key_length == model.value_length


def effective_kv_cache_type(kv_cache_type: str, use_flash_attention: bool) -> str:
    """llama.cpp quantizes the V cache only with flash attention; otherwise the cache is f16."""
    requested = kv_cache_type.lower()
    if use_flash_attention and requested in _KV_BYTES and requested != "f32":
        return requested or "f16"
    return "f16"


def use_flash_attention(model: GGUFInfo, gpus: Sequence[GPUInfo], requested: bool) -> bool:
    return (
        requested
        and all(g.supports_flash_attention for g in gpus)
        and model_supports_flash_attention(model)
    )


@attrs.frozen(kw_only=True)
class _Dims:
    embedding: int
    heads: int  # largest per-layer head count
    heads_kv: int  # largest per-layer KV head count
    embedding_heads: int  # embedding / smallest head count (0 when a layer has none)
    key_length: int
    value_length: int
    context: int  # num_ctx * num_parallel
    batch: int
    vocab: int


@attrs.frozen
class GraphSize:
    """KV cache per block, and the compute graph for partial and for full offload."""

    kv: tuple[int, ...]
    partial: int
    full: int


def _llama(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, h, hkv, eh = d.embedding, d.heads, d.heads_kv, d.embedding_heads
    c, b, v = d.context, d.batch, d.vocab
    full = max(4 * b * (1 + 4 * e + c * (1 + h)), 4 * b * (e + v))
    partial = 4 * b * e + max(
        4 * b * (1 + e + max(c, e)) + e * e * 9 // 16 + 4 * c * (b * h + eh * hkv),
        4 * b * (e + v) + e * v * 105 // 128,
    )
    experts = _tensor(model, "blk.0.ffn_gate_exps.weight")
    split_experts = _tensor(model, "blk.0.ffn_gate.0.weight")
    if experts is not None:
        # Mixture-of-experts with stacked expert tensors (mixtral 8x22b style).
        ff = model.feed_forward_length
        partial = max(
            3 * experts.nbytes + 4 * b * (2 * ff + hkv + e + c + eh * hkv),
            4 * (c * b * h + c * eh * hkv + b * 1024 + eh * hkv * b),
        )
    elif split_experts is not None and len(split_experts.shape) > 1:
        # One tensor per expert (mixtral 8x7b style).
        g = split_experts.shape[1]
        full = 4 * b * (2 + 3 * e + c * (1 + h) + 2 * hkv + g)
        partial = max(
            4 * b * (3 + eh * hkv + e + c * (1 + h) + g) + (e * e + 3 * e * hkv * g) * 9 // 16,
            4 * b * (1 + 2 * e + c * (1 + h)) + e * (6 * c * hkv // max(h, 1) + e * 9 // 16),
        )
    return partial, full


def _gemma(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, h, ek, c, b, v = d.embedding, d.heads, d.key_length, d.context, d.batch, d.vocab
    full = max(4 * b * (e + v), 4 * b * (2 + c + c * h + 2 * e + 2 * ek * h))
    partial = max(
        4 * e * b + e * v * 105 // 128 + 4 * v * b,
        4 * b * (2 * e + 1 + 2 * ek * h + c + c * h) + 4 * ek * c * 8 + e * ek * h * 9 // 16,
    )
    if model.architecture == "gemma3n":
        return partial * 4, full * 4
    return partial, full


def _qwen2(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, h, c, b, v = d.embedding, d.heads, d.context, d.batch, d.vocab
    full = max(4 * b * (e + v), 4 * b * (1 + 2 * e + c + c * h))
    partial = max(
        4 * b * (e + v) + e * v * 105 // 128,
        4 * (b * (1 + 2 * e + c * (1 + h)) + e * (1 + c)),
    )
    return partial, full


def _command_r(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, h, c, b, v = d.embedding, d.heads, d.context, d.batch, d.vocab
    full = max(4 * b * (e + v), 4 * b * (2 + 4 * e + c * (1 + h)))
    partial = max(
        4 * b * (e + v) + e * v * 105 // 128,
        4 * b * (1 + 2 * e + c * (1 + h)) + 4 * e * c + e * e * 9 // 16,
    )
    return partial, full


def _phi2(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, h, c, b, v = d.embedding, d.heads, d.context, d.batch, d.vocab
    full = max(4 * b * (e + v), 4 * b * (1 + 4 * e + c + c * h))
    partial = max(4 * b * (2 * e + v) + e * v * 105 // 128, 4 * b * (2 + 3 * e + c + c * h))
    return partial, full


def _stablelm(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, h, c, b, v = d.embedding, d.heads, d.context, d.batch, d.vocab
    full = 4 * b * (c * (1 + h) + 3 * e + 2)
    return max(4 * b * (v + 2 * e), full), full


def _deepseek2(model: GGUFInfo, d: _Dims) -> tuple[int, int]:
    e, hkv, ek, c, b, v = d.embedding, d.heads_kv, d.key_length, d.context, d.batch, d.vocab
    full = max(4 * b * (3 * e + v), 4 * b * (3 * e + 2 + c * (1 + hkv) + 2 * ek * hkv))
    partial = max(
        4 * b * (3 * e + v) + e * v * 105 // 128,
        4 * b * (2 * e + 1 + 2 * ek * hkv + c + c * hkv)
        + 4 * ek * c * hkv
        + e * ek * hkv * 9 // 16,
    )
    return partial, full


# Architectures without an entry get (0, 0) and fall back to the KV-proportional graph size.
_GRAPH_FORMULAS: dict[str, Callable[[GGUFInfo, _Dims], tuple[int, int]]] = {
    "llama": _llama,
    "llama4": _llama,
    "gemma": _gemma,
    "gemma2": _gemma,
    "gemma3": _gemma,
    "gemma3n": _gemma,
    "qwen2": _qwen2,
    "command-r": _command_r,
    "phi2": _phi2,
    "stablelm": _stablelm,
    "deepseek2": _deepseek2,
}

# gemma3 keeps a full-context cache only on every sixth layer; the others hold a sliding window.
_GEMMA3_GLOBAL_EVERY = 6


def graph_size(
    model: GGUFInfo,
    *,
    context: int,
    batch: int,
    num_parallel: int = 1,
    kv_cache_type: str = "f16",
) -> GraphSize:
    """Ollama's `GraphSize`: KV bytes per block and the graph for `context × num_parallel` tokens.

    `context` is one sequence's num_ctx; `kv_cache_type` is the type actually used (see
    `effective_kv_cache_type`). An architecture without a formula returns 0 for both graphs.
    """
    blocks = model.block_count
    ctx = context * max(num_parallel, 1)
    heads = _per_layer(_ints(model.arch_get("attention.head_count")), blocks, lambda _: 0)
    heads_kv = _per_layer(
        _ints(model.arch_get("attention.head_count_kv")), blocks, lambda i: heads[i]
    )
    key_length, value_length = model.key_length, model.value_length
    num, den = _KV_BYTES.get(kv_cache_type.lower(), _KV_BYTES["f16"])

    kv: list[int] = []
    for layer in range(blocks):
        if heads[layer] > 0 and heads_kv[layer] > 0:
            kv.append(ctx * (key_length + value_length) * heads_kv[layer] * num // den)
        else:
            # A recurrent (state-space) layer: a fixed f32 state instead of a per-token cache.
            d_conv = int(model.arch_get("ssm.conv_kernel", 0))
            d_state = int(model.arch_get("ssm.state_size", 0))
            d_inner = int(model.arch_get("ssm.inner_size", 0))
            n_group = int(model.arch_get("ssm.group_count", 0))
            conv = (d_conv - 1) * (d_inner + 2 * n_group * d_state) if d_conv > 0 else 0
            kv.append((conv + d_state * d_inner) * 4)

    heads_max = max(heads, default=0)
    heads_min = min(heads, default=0)
    dims = _Dims(
        embedding=model.embedding_length,
        heads=heads_max,
        heads_kv=max(heads_kv, default=0),
        embedding_heads=model.embedding_length // heads_min if heads_min > 0 else 0,
        key_length=key_length,
        value_length=value_length,
        context=ctx,
        batch=batch,
        vocab=_vocab_size(model),
    )
    formula = _GRAPH_FORMULAS.get(model.architecture)
    partial, full = formula(model, dims) if formula else (0, 0)

    if model.architecture == "gemma3":
        window = max(num_parallel, 1) * int(model.arch_get("attention.sliding_window", 0)) + batch
        per_token = (key_length + value_length) * dims.heads_kv
        for layer in range(blocks):
            if (layer + 1) % _GEMMA3_GLOBAL_EVERY != 0:
                kv[layer] = window * per_token * num // den
    return GraphSize(kv=tuple(kv), partial=partial, full=full)


# --- the estimate ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MemoryEstimate:
    """Where a model would go. Mirrors Ollama's `MemoryEstimate`, plus the figures behind it.

    `layers` counts offloaded layers, the output layer included (at most block_count + 1).
    `vram_size` is the sum of `gpu_sizes`; `total_size` is VRAM plus what stays in system RAM.
    When nothing is offloaded, `layers`, `graph` and `vram_size` are 0 and `gpu_sizes`,
    `tensor_split` and `gpu_ids` are empty.
    """

    layers: int
    graph: int
    vram_size: int
    total_size: int
    tensor_split: tuple[int, ...]
    gpu_sizes: tuple[int, ...]
    gpu_ids: tuple[str, ...]
    kv: int
    fully_loaded: bool
    # The figures behind the placement, for logs and tests.
    block_count: int
    layer_size: int
    kv_per_layer: tuple[int, ...]
    graph_partial: int
    graph_full: int
    memory_weights: int
    memory_layer_output: int
    projector_weights: int
    cpu_graph: int
    kv_cache_type: str
    flash_attention: bool

    @property
    def system_size(self) -> int:
        """What stays in system RAM."""
        return self.total_size - self.vram_size

    @property
    def tensor_split_arg(self) -> str:
        """llama.cpp's `--tensor-split` value; empty for one GPU or none."""
        return ",".join(map(str, self.tensor_split)) if len(self.tensor_split) > 1 else ""

    def vram_by_gpu(self) -> dict[str, int]:
        """Predicted bytes per GPU id: what `update_free_space` takes for a loaded runner."""
        return dict(zip(self.gpu_ids, self.gpu_sizes, strict=True))


def estimate(
    model: GGUFInfo,
    gpus: Sequence[GPUInfo],
    *,
    num_ctx: int,
    num_parallel: int,
    num_batch: int,
    num_gpu: int,
    kv_cache_type: str = "",
    flash_attention: bool = False,
    projectors: Sequence[GGUFInfo] = (),
    gpu_overhead: int = 0,
) -> MemoryEstimate:
    """Place `model` on `gpus` (all of one library) layer by layer, as Ollama does.

    `num_ctx` is per sequence; the KV cache is sized for `num_ctx × num_parallel`. `num_gpu` < 0
    means as many layers as fit. `kv_cache_type` and `flash_attention` are the requested
    OLLAMA_KV_CACHE_TYPE and OLLAMA_FLASH_ATTENTION; they take effect only where the GPUs and the
    model support them. With no GPUs, everything is placed in system RAM.
    """
    gpus = tuple(gpus)
    blocks = model.block_count
    layer_weights = model.layer_sizes()
    # A projector costs its weights and the graph that encodes an image (Ollama's llama engine
    # counts the weights alone; its own engine adds the vision graph too).
    projector_weights = sum(p.weights_size + projector_graph_size(p) for p in projectors)

    use_fa = use_flash_attention(model, gpus, flash_attention)
    kv_type = effective_kv_cache_type(kv_cache_type, use_fa)
    batch = max(1, min(num_ctx, num_batch))
    sizes = graph_size(
        model, context=num_ctx, batch=batch, num_parallel=num_parallel, kv_cache_type=kv_type
    )
    kv = sizes.kv
    kv_total = sum(kv)
    graph_partial, graph_full = sizes.partial, sizes.full
    if graph_partial == 0:
        heads_kv = _ints(model.arch_get("attention.head_count_kv")) or [model.head_count]
        gqa = model.head_count // (min(heads_kv) or 1)
        graph_partial = gqa * kv_total // 6
    if graph_full == 0:
        graph_full = graph_partial
    if gpus and gpus[0].library.lower() == LIBRARY_METAL:
        # Unified memory: a partial offload costs no extra copy of the graph.
        graph_partial = graph_full
    elif len(gpus) > 1:
        graph_full = graph_partial
    graph_max = max(graph_partial, graph_full)

    # One layer's worth (weights and cache) is kept free on every GPU as a buffer.
    layer_size = layer_weights.get(0, 0) + (kv[0] if kv else 0)
    output_size = _group_bytes(model, "output_norm") + (
        _group_bytes(model, "output") or _group_bytes(model, "token_embd")
    )

    allocations = [0] * len(gpus)
    split = [0] * len(gpus)
    with_space: list[int] = []
    for position, gpu in enumerate(gpus):
        first_overhead = 0 if with_space else projector_weights
        need = gpu_overhead + first_overhead + graph_max + gpu.minimum_memory + 2 * layer_size
        if gpu.free_memory < need:
            log.debug(
                "gpu has too little memory to allocate any layers",
                extra={"gpu": gpu.id, "free": gpu.free_memory, "needed": need},
            )
            continue
        with_space.append(position)
        allocations[position] += gpu.minimum_memory + layer_size
    overflow = 0
    if with_space:
        allocations[with_space[0]] += projector_weights
    else:
        overflow += projector_weights

    def place(size: int, turn: int, *, drop_full: bool) -> bool:
        """Whether a layer of `size` went on a GPU with room: round-robin by `turn`, trying the
        GPUs with space from there (Ollama's loops in `EstimateGPULayers`). The block layers'
        loop drops each GPU it finds full; the output layer's leaves them, as Ollama's does."""
        for j in range(len(with_space), 0, -1):
            position = with_space[turn % j]
            used = allocations[position] + graph_max
            if gpus[position].free_memory > gpu_overhead + used + size:
                allocations[position] += size
                split[position] += 1
                return True
            if drop_full:
                del with_space[turn % j]
        return False

    layer_count = 0
    memory_weights = 0
    blocks_total = 0
    size = layer_size
    # From the last block down, so the blocks nearest the output are the ones offloaded first.
    for index in reversed(range(blocks)):
        if index in layer_weights:
            size = layer_weights[index] + kv[index]
            memory_weights += layer_weights[index]
        blocks_total += size
        if num_gpu >= 0 and layer_count >= num_gpu:
            overflow += size
            continue
        if place(size, index, drop_full=True):
            layer_count += 1
        if not with_space:
            overflow += size
    fully_loaded = layer_count >= blocks

    if output_size > 0:
        wanted = num_gpu < 0 or layer_count < num_gpu
        if wanted and place(output_size, layer_count, drop_full=False):
            layer_count += 1
        if layer_count < blocks + 1:
            fully_loaded = False
            overflow += output_size

    graph = graph_full if fully_loaded else graph_partial
    for position in range(len(gpus)):
        if split[position] > 0:
            allocations[position] += graph

    def result(
        *, layers: int, vram_sizes: tuple[int, ...], rest: int, cpu_graph: int
    ) -> MemoryEstimate:
        vram = sum(vram_sizes)
        return MemoryEstimate(
            layers=layers,
            graph=graph if layers else 0,
            vram_size=vram,
            total_size=vram + rest + cpu_graph,
            tensor_split=tuple(split) if layers else (),
            gpu_sizes=vram_sizes,
            gpu_ids=tuple(g.id for g in gpus) if layers else (),
            kv=kv_total,
            fully_loaded=fully_loaded and layers > 0,
            block_count=blocks,
            layer_size=layer_size,
            kv_per_layer=kv,
            graph_partial=graph_partial,
            graph_full=graph_full,
            memory_weights=memory_weights,
            memory_layer_output=output_size,
            projector_weights=projector_weights,
            cpu_graph=cpu_graph,
            kv_cache_type=kv_type,
            flash_attention=use_fa,
        )

    if layer_count == 0:
        # All in system RAM, the compute graph included (Ollama leaves the graph out here; a CPU
        # runner allocates it all the same).
        everything = blocks_total + output_size + projector_weights
        return result(layers=0, vram_sizes=(), rest=everything, cpu_graph=graph_full)
    return result(layers=layer_count, vram_sizes=tuple(allocations), rest=overflow, cpu_graph=0)


# --- fit decisions -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LoadOptions:
    """The inputs of `estimate` other than the model and the GPUs, bundled for the fit helpers."""

    num_ctx: int = 4096
    num_parallel: int = 1
    num_batch: int = 512
    num_gpu: int = -1
    kv_cache_type: str = ""
    flash_attention: bool = False
    gpu_overhead: int = 0
    projectors: tuple[GGUFInfo, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, **runner_options: Any) -> LoadOptions:
        """Server-wide choices from `Settings`; per-request ones (num_ctx, …) as keywords."""
        return cls(
            kv_cache_type=settings.kv_cache_type,
            flash_attention=bool(settings.flash_attention),
            gpu_overhead=settings.gpu_overhead,
            **runner_options,
        )

    def estimate(self, model: GGUFInfo, gpus: Sequence[GPUInfo]) -> MemoryEstimate:
        return estimate(
            model,
            gpus,
            num_ctx=self.num_ctx,
            num_parallel=self.num_parallel,
            num_batch=self.num_batch,
            num_gpu=self.num_gpu,
            kv_cache_type=self.kv_cache_type,
            flash_attention=self.flash_attention,
            projectors=self.projectors,
            gpu_overhead=self.gpu_overhead,
        )


def projector_graph_size(projector: GGUFInfo) -> int:
    """An estimate of the compute buffer that encodes one image with `projector`: float32
    activations of every patch through the widest layer, and one head's attention scores at a
    time over all of them, both four times over for what the graph keeps alive at once. Real
    projectors log 30 to 300 MiB here; the tests' tiny one 0.04 MiB."""
    size = int(projector.get("clip.vision.image_size") or 0)
    patch = int(projector.get("clip.vision.patch_size") or 0)
    if size <= 0 or patch <= 0:
        return 0
    patches = (size // patch) ** 2 + 1
    width = max(
        int(projector.get("clip.vision.embedding_length") or 0),
        int(projector.get("clip.vision.feed_forward_length") or 0),
        int(projector.get("clip.vision.projection_dim") or 0),
    )
    return 4 * 4 * (patches * width + patches * patches)


def by_library(gpus: Iterable[GPUInfo]) -> list[tuple[GPUInfo, ...]]:
    """GPUs grouped by library, in order of first appearance: one estimate never mixes them."""
    groups: dict[str, list[GPUInfo]] = {}
    for gpu in gpus:
        groups.setdefault(gpu.library.lower(), []).append(gpu)
    return [tuple(group) for group in groups.values()]


def predict_server_fit(
    model: GGUFInfo, gpus: Sequence[GPUInfo], options: LoadOptions
) -> tuple[bool, int]:
    """Does the model fit entirely on these GPUs? Returns (fits, estimated VRAM)."""
    vram = 0
    for group in by_library(gpus):
        result = options.estimate(model, group)
        vram = result.vram_size
        wanted = model.block_count + 1 if options.num_gpu < 0 else options.num_gpu
        if result.layers > 0 and result.layers >= wanted:
            return True, vram
    return False, vram


def _largest_free_first(gpus: Sequence[GPUInfo]) -> list[GPUInfo]:
    # Discrete GPUs before integrated ones, each by free memory, largest first.
    return sorted(gpus, key=lambda g: (not g.integrated, g.free_memory), reverse=True)


def pick_best_full_fit(
    model: GGUFInfo,
    gpus: Sequence[GPUInfo],
    options: LoadOptions,
    *,
    sched_spread: bool = False,
) -> tuple[GPUInfo, ...] | None:
    """The fewest GPUs (of one library) that hold the whole model, or None if none do.

    With OLLAMA_SCHED_SPREAD, only "all GPUs of the library" is tried.
    """
    for group in by_library(gpus):
        ordered = _largest_free_first(group)
        subsets = [ordered] if sched_spread else [ordered[:n] for n in range(1, len(ordered) + 1)]
        for subset in subsets:
            fits, vram = predict_server_fit(model, subset, options)
            if fits:
                log.info(
                    "new model will fit in available VRAM, loading",
                    extra={"gpus": len(subset), "required": human_bytes2(vram)},
                )
                return tuple(subset)
    return None


def pick_best_partial_fit(
    model: GGUFInfo, gpus: Sequence[GPUInfo], options: LoadOptions
) -> tuple[GPUInfo, ...]:
    """With GPUs of several libraries, the library that takes the most VRAM; else all of them."""
    groups = by_library(gpus)
    if len(groups) <= 1:
        return tuple(gpus)
    best, best_vram = groups[0], 0
    for group in groups:
        _, vram = predict_server_fit(model, group, options)
        if vram > best_vram:
            best, best_vram = group, vram
    return best


def verify_cpu_fit(model: GGUFInfo, system: SystemMemory, options: LoadOptions) -> bool:
    """Would the whole model fit in free RAM now (no swap)? False means: evict something first."""
    return options.estimate(model, ()).total_size <= system.free


def check_system_memory(result: MemoryEstimate, system: SystemMemory) -> None:
    """Raise `InsufficientSystemMemory` when the RAM part exceeds free RAM plus free swap.

    Ollama skips this on macOS, whose swap grows on demand.
    """
    if sys.platform == "darwin":
        return
    available = system.free + system.free_swap
    if result.system_size > available:
        log.warning(
            "model request too large for system",
            extra={
                "requested": human_bytes2(result.system_size),
                "available": human_bytes2(available),
                "total": human_bytes2(system.total),
                "free": human_bytes2(system.free),
                "swap": human_bytes2(system.free_swap),
            },
        )
        raise InsufficientSystemMemory(result.system_size, available)


@attrs.frozen(kw_only=True)
class LoadPlan:
    """Where to load: the GPUs to give the runner (empty: CPU only) and the layers to offload."""

    gpus: tuple[GPUInfo, ...]
    estimate: MemoryEstimate
    # llama.cpp's n_gpu_layers: the estimate's layer count when num_gpu was automatic.
    num_gpu: int


def plan_load(
    model: GGUFInfo,
    gpus: Sequence[GPUInfo],
    system: SystemMemory,
    options: LoadOptions,
    *,
    require_full: bool,
    sched_spread: bool = False,
) -> LoadPlan:
    """Ollama's load decision (`llamaServer.Load`) as a pure function.

    `gpus` should already have passed through `update_free_space`. `require_full` is true when
    other models are loaded: then a model that does not fit whole raises `LoadRequiredFull`, and
    the scheduler evicts one and retries. With nothing loaded a partial fit is taken. A model
    whose RAM part exceeds free RAM plus swap raises `InsufficientSystemMemory` either way.
    """
    gpus = () if options.num_gpu == 0 else tuple(gpus)
    num_gpu = options.num_gpu
    if gpus:
        chosen = pick_best_full_fit(model, gpus, options, sched_spread=sched_spread)
        if chosen is None:
            if require_full:
                log.info("model requires more memory than is currently available, evicting")
                raise LoadRequiredFull()
            chosen = pick_best_partial_fit(model, gpus, options)
    else:
        chosen = ()
        if require_full and not verify_cpu_fit(model, system, options):
            log.info("model requires more system memory than is currently available, evicting")
            raise LoadRequiredFull(
                f"model requires more system memory than is currently available "
                f"{ERR_LOAD_REQUIRED_FULL}"
            )
    result = options.estimate(model, chosen)
    if chosen and result.layers == 0:
        # Not one layer fits: don't bother with the GPU at all.
        chosen = ()
        result = options.estimate(model, ())
    if not chosen:
        num_gpu = 0
    elif num_gpu < 0:
        num_gpu = result.layers
    check_system_memory(result, system)
    return LoadPlan(gpus=chosen, estimate=result, num_gpu=num_gpu)


# --- free memory bookkeeping for the scheduler ------------------------------------------------


def update_free_space(
    gpus: Iterable[GPUInfo], loaded: Iterable[Mapping[str, int]]
) -> tuple[GPUInfo, ...]:
    """Ollama's `updateFreeSpace`: trust the smaller of reported free and total minus predicted.

    `loaded` holds, for each loaded runner, its predicted (or reported) bytes per GPU id, e.g.
    `MemoryEstimate.vram_by_gpu()`. Drivers report freed and taken memory late, so a runner that
    just started may not show yet; taking the smaller figure avoids overcommitting.
    """
    predicted: dict[str, int] = {}
    for usage in loaded:
        for gpu_id, nbytes in usage.items():
            predicted[gpu_id] = predicted.get(gpu_id, 0) + nbytes
    updated = []
    for gpu in gpus:
        used = predicted.get(gpu.id)
        if used is None:
            updated.append(gpu)
        elif used > gpu.total_memory:
            log.warning(
                "predicted usage exceeds VRAM",
                extra={"gpu": gpu.id, "total": gpu.total_memory, "predicted": used},
            )
            updated.append(gpu.with_free(0))
        elif gpu.total_memory - used < gpu.free_memory:
            updated.append(gpu.with_free(gpu.total_memory - used))
        else:
            updated.append(gpu)
    return tuple(updated)


def total_free(gpus: Iterable[GPUInfo]) -> int:
    return sum(g.free_memory for g in gpus)


def needs_vram_recovery(gpus: Sequence[GPUInfo]) -> bool:
    """Must the scheduler wait for VRAM to come back after unloading a runner on these GPUs?

    Not for a CPU runner, not when every GPU is integrated (its memory is system RAM), and not
    for a single Metal GPU.
    """
    if not gpus or all(g.integrated for g in gpus):
        return False
    return not (len(gpus) == 1 and gpus[0].library.lower() == LIBRARY_METAL)


def vram_recovered(
    baseline_free: int,
    now_free: int,
    runner_vram: int,
    fraction: float = RECOVERY_FRACTION,
) -> bool:
    """Has free VRAM (summed over GPUs) grown by more than `fraction` of the runner's VRAM?

    `baseline_free` is taken just before the runner is killed. The scheduler polls this every
    RECOVERY_POLL_INTERVAL seconds and gives up after RECOVERY_TIMEOUT. A runner that held no
    VRAM has nothing to wait for.
    """
    if runner_vram <= 0:
        return True
    return now_free - baseline_free > runner_vram * fraction
