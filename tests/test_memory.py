"""The memory estimate and fit decisions, checked against Ollama's own test figures."""

from __future__ import annotations

from typing import Any

import pytest

from trio_ollama.config import cache_dir
from trio_ollama.gguf_info import GGUFInfo, TensorInfo, read_gguf_info
from trio_ollama.gocompat.format import GiB, MiB, human_bytes2
from trio_ollama.scheduler.devices import GPUInfo, SystemMemory, fake_gpu
from trio_ollama.scheduler.memory import (
    InsufficientSystemMemory,
    LoadOptions,
    LoadRequiredFull,
    MemoryEstimate,
    check_system_memory,
    estimate,
    graph_size,
    needs_vram_recovery,
    pick_best_full_fit,
    pick_best_partial_fit,
    plan_load,
    predict_server_fit,
    system_memory_message,
    update_free_space,
    verify_cpu_fit,
    vram_recovered,
)
from trio_ollama.store.default_model import GGUF_NAME

# --- the model of Ollama's llm/memory_test.go ---------------------------------------------------
# 5 blocks, embedding 4096, 32 heads and 32 KV heads, a one-token vocabulary, and one f32 tensor
# of 1x1x1x1 (4 bytes) per block plus an output tensor of the same size.

BLOCKS = 5
LAYER_SIZE = 33554436  # 4 bytes of weights + KV 2048 ctx * (128 + 128) * 32 heads * 2 bytes
GRAPH_PARTIAL = 202377216
GRAPH_FULL = 171968512
OUTPUT = 4
MINIMUM = 457 * MiB


def tensor(name: str, nbytes: int = 4, shape: tuple[int, ...] = (1, 1, 1, 1)) -> TensorInfo:
    return TensorInfo(name=name, ggml_type="F32", shape=shape, offset=0, nbytes=nbytes)


def make_model(
    *,
    arch: str = "llama",
    blocks: int = BLOCKS,
    embd: int = 4096,
    heads: Any = 32,
    heads_kv: Any = 32,
    extra: dict[str, Any] | None = None,
    tensors: tuple[TensorInfo, ...] | None = None,
) -> GGUFInfo:
    metadata: dict[str, Any] = {
        "general.architecture": arch,
        f"{arch}.context_length": 32,
        f"{arch}.embedding_length": embd,
        f"{arch}.block_count": blocks,
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": heads_kv,
        "tokenizer.ggml.tokens": [" "],
        "tokenizer.ggml.scores": [0.0],
        "tokenizer.ggml.token_type": [0],
    }
    metadata.update(extra or {})
    if tensors is None:
        tensors = (
            *(tensor(f"blk.{i}.attn.weight") for i in range(blocks)),
            tensor("output.weight"),
        )
    return GGUFInfo(version=3, metadata=metadata, tensors=tensors, data_offset=0, file_size=0)


MODEL = make_model()
OPTIONS = LoadOptions(num_ctx=2048, num_parallel=1, num_batch=512, num_gpu=-1)


def run(model: GGUFInfo, gpus: list[GPUInfo], **overrides: Any) -> MemoryEstimate:
    kwargs: dict[str, Any] = {"num_ctx": 2048, "num_parallel": 1, "num_batch": 512, "num_gpu": -1}
    kwargs.update(overrides)
    return estimate(model, gpus, **kwargs)


def cuda(index: int, free: int, total: int = 80 * GiB, cc: tuple[int, int] = (8, 0)) -> GPUInfo:
    return GPUInfo(
        index=index,
        id=f"GPU-{index}",
        name="test",
        total_memory=total,
        free_memory=free,
        compute_capability=cc,
    )


def test_graph_and_kv_sizes_match_ollama() -> None:
    sizes = graph_size(MODEL, context=2048, batch=512, num_parallel=1)
    assert sizes.kv == (LAYER_SIZE - 4,) * BLOCKS
    assert sizes.partial == GRAPH_PARTIAL
    assert sizes.full == GRAPH_FULL


def test_cpu_estimate_has_no_layers_and_no_graph() -> None:
    result = run(MODEL, [])
    assert result.layers == 0
    assert result.graph == 0
    assert result.vram_size == 0
    assert result.layer_size == LAYER_SIZE
    assert result.memory_layer_output == OUTPUT
    assert result.graph_partial == GRAPH_PARTIAL
    assert result.graph_full == GRAPH_FULL
    # Everything in RAM: 5 layers with their cache, the output, and the compute graph.
    assert result.total_size == BLOCKS * LAYER_SIZE + OUTPUT + GRAPH_FULL
    assert result.cpu_graph == GRAPH_FULL
    assert result.gpu_sizes == () and result.tensor_split == ()


@pytest.mark.parametrize(
    ("space0", "space1", "expect0", "expect1"),
    [
        (1, 1, 1, 1),
        (2, 1, 2, 1),
        (2, 2, 2, 2),
        (1, 2, 1, 2),
        (3, 3, 3, 3),
        (4, 4, 3, 3),
        (6, 6, 3, 3),
        (0, 3, 0, 3),
    ],
)
def test_dual_cuda_split(space0: int, space1: int, expect0: int, expect1: int) -> None:
    graph = max(GRAPH_PARTIAL, GRAPH_FULL)
    free = [MINIMUM + LAYER_SIZE + n * LAYER_SIZE + 1 + graph for n in (space0, space1)]
    free[0 if space0 > 0 else 1] += OUTPUT
    gpus = [cuda(0, free[0]), cuda(1, free[1])]

    result = run(MODEL, gpus)

    assert result.layers == expect0 + expect1
    assert result.tensor_split == (expect0, expect1)
    assert result.tensor_split_arg == f"{expect0},{expect1}"
    assert result.vram_size == sum(result.gpu_sizes)
    if result.layers < BLOCKS + 1:
        assert result.vram_size < result.total_size
        assert not result.fully_loaded
    else:
        assert result.vram_size == result.total_size
        assert result.fully_loaded
    # With two GPUs the partial graph is charged even when everything fits.
    assert result.graph_full == result.graph_partial == GRAPH_PARTIAL


def test_single_gpu_full_fit_accounts_every_byte() -> None:
    result = run(MODEL, [cuda(0, 40 * GiB)])
    assert result.layers == BLOCKS + 1
    assert result.fully_loaded
    assert result.graph == GRAPH_FULL
    # minimum + the one-layer buffer + 5 layers + output + the full-offload graph
    assert result.vram_size == MINIMUM + LAYER_SIZE + BLOCKS * LAYER_SIZE + OUTPUT + GRAPH_FULL
    assert result.total_size == result.vram_size
    assert result.vram_by_gpu() == {"GPU-0": result.vram_size}
    assert result.tensor_split_arg == ""


def test_num_gpu_caps_offloaded_layers() -> None:
    result = run(MODEL, [cuda(0, 40 * GiB)], num_gpu=2)
    assert result.layers == 2
    assert not result.fully_loaded
    assert result.graph == GRAPH_PARTIAL
    # The three blocks and the output left over stay in system RAM.
    assert result.total_size - result.vram_size == 3 * LAYER_SIZE + OUTPUT


def test_gpu_overhead_can_push_a_gpu_out() -> None:
    graph = max(GRAPH_PARTIAL, GRAPH_FULL)
    free = MINIMUM + 2 * LAYER_SIZE + graph + 1
    assert run(MODEL, [cuda(0, free)]).layers == 1
    assert run(MODEL, [cuda(0, free)], gpu_overhead=2).layers == 0


def test_parallel_multiplies_the_kv_cache() -> None:
    one = run(MODEL, [], num_parallel=1)
    four = run(MODEL, [], num_parallel=4)
    assert four.kv == 4 * one.kv
    assert four.kv_per_layer[0] == 4 * (LAYER_SIZE - 4)


def test_kv_cache_type_needs_flash_attention() -> None:
    gpu = cuda(0, 40 * GiB)
    f16 = run(MODEL, [gpu])
    no_fa = run(MODEL, [gpu], kv_cache_type="q8_0")
    q8 = run(MODEL, [gpu], kv_cache_type="q8_0", flash_attention=True)
    q4 = run(MODEL, [gpu], kv_cache_type="q4_0", flash_attention=True)
    assert no_fa.kv == f16.kv and no_fa.kv_cache_type == "f16" and not no_fa.flash_attention
    assert q8.kv * 2 == f16.kv and q8.kv_cache_type == "q8_0" and q8.flash_attention
    assert q4.kv * 4 == f16.kv


def test_flash_attention_off_when_a_gpu_lacks_it() -> None:
    old = cuda(0, 40 * GiB, cc=(5, 2))
    result = run(MODEL, [old], kv_cache_type="q8_0", flash_attention=True)
    assert not result.flash_attention
    assert result.kv_cache_type == "f16"


def test_flash_attention_off_for_embedding_models() -> None:
    model = make_model(extra={"llama.pooling_type": 1})
    result = run(model, [cuda(0, 40 * GiB)], kv_cache_type="q8_0", flash_attention=True)
    assert not result.flash_attention


def test_architecture_without_formula_uses_kv_fallback() -> None:
    model = make_model(arch="somethingnew", heads=32, heads_kv=8)
    result = run(model, [])
    kv_total = BLOCKS * 2048 * (128 + 128) * 8 * 2
    assert result.kv == kv_total
    # gqa (32 / 8) * kv / 6, and the full graph equals the partial one
    assert result.graph_partial == 4 * kv_total // 6
    assert result.graph_full == result.graph_partial


def test_recurrent_layers_use_state_size() -> None:
    model = make_model(
        arch="mamba",
        heads=0,
        heads_kv=0,
        extra={
            "mamba.ssm.conv_kernel": 4,
            "mamba.ssm.state_size": 16,
            "mamba.ssm.inner_size": 1536,
            "mamba.ssm.group_count": 0,
        },
    )
    sizes = graph_size(model, context=2048, batch=512)
    assert sizes.kv == (((4 - 1) * 1536 + 16 * 1536) * 4,) * BLOCKS


def test_per_layer_head_counts() -> None:
    model = make_model(arch="hybrid", heads=[32, 0, 32, 0, 32], heads_kv=[8, 0, 8, 0, 8])
    sizes = graph_size(model, context=100, batch=100)
    attention = 100 * (128 + 128) * 8 * 2
    assert sizes.kv == (attention, 0, attention, 0, attention)


def test_projector_weights_go_to_the_first_gpu() -> None:
    projector = GGUFInfo(
        version=3,
        metadata={"general.architecture": "clip"},
        tensors=(tensor("v.enc.weight", nbytes=1000),),
        data_offset=0,
        file_size=0,
    )
    with_proj = run(MODEL, [cuda(0, 40 * GiB)], projectors=[projector])
    without = run(MODEL, [cuda(0, 40 * GiB)])
    assert with_proj.vram_size - without.vram_size == 1000
    assert with_proj.projector_weights == 1000
    cpu = run(MODEL, [], projectors=[projector])
    assert cpu.total_size - run(MODEL, []).total_size == 1000


def test_metal_uses_the_full_graph_for_partial_offload() -> None:
    metal = fake_gpu(total=64 * GiB, library="metal")
    result = run(MODEL, [metal])
    assert result.graph_partial == result.graph_full == GRAPH_FULL
    assert metal.minimum_memory == 512 * MiB


# --- fit decisions -----------------------------------------------------------------------------


def test_predict_server_fit() -> None:
    fits, vram = predict_server_fit(MODEL, [cuda(0, 40 * GiB)], OPTIONS)
    assert fits and vram > 0
    small = MINIMUM + 3 * LAYER_SIZE + GRAPH_PARTIAL
    assert predict_server_fit(MODEL, [cuda(0, small)], OPTIONS)[0] is False
    # An explicit num_gpu is a full fit once that many layers are placed.
    partial = LoadOptions(num_ctx=2048, num_gpu=1)
    assert predict_server_fit(MODEL, [cuda(0, small)], partial)[0] is True


def test_pick_best_full_fit_prefers_fewest_gpus() -> None:
    big, small = cuda(0, 2 * GiB), cuda(1, 20 * GiB)
    chosen = pick_best_full_fit(MODEL, [big, small], OPTIONS)
    assert chosen == (small,)  # the one with the most free memory, alone
    spread = pick_best_full_fit(MODEL, [big, small], OPTIONS, sched_spread=True)
    assert spread == (small, big)
    tiny = cuda(2, 600 * MiB)
    assert pick_best_full_fit(MODEL, [tiny], OPTIONS) is None


def test_pick_best_full_fit_across_two_gpus() -> None:
    # Neither GPU holds all six layers alone, together they do.
    each = MINIMUM + LAYER_SIZE + 4 * LAYER_SIZE + GRAPH_PARTIAL
    gpus = [cuda(0, each), cuda(1, each)]
    assert pick_best_full_fit(MODEL, gpus, OPTIONS) == tuple(gpus)


def test_pick_best_partial_fit_by_library() -> None:
    nvidia = cuda(0, 4 * GiB)
    assert pick_best_partial_fit(MODEL, [nvidia], OPTIONS) == (nvidia,)
    other = fake_gpu(1, total=600 * MiB, library="rocm")  # too small for even one layer
    assert pick_best_partial_fit(MODEL, [other, nvidia], OPTIONS) == (nvidia,)


def test_cpu_fit_and_system_memory_message() -> None:
    need = run(MODEL, []).total_size
    assert verify_cpu_fit(MODEL, SystemMemory(total=8 * GiB, free=need), OPTIONS)
    assert not verify_cpu_fit(MODEL, SystemMemory(total=8 * GiB, free=need - 1), OPTIONS)

    assert human_bytes2(3 * GiB // 2) == "1.5 GiB"
    assert human_bytes2(457 * MiB) == "457.0 MiB"
    assert human_bytes2(2048) == "2.0 KiB"
    assert human_bytes2(12) == "12 B"
    assert system_memory_message(int(9.5 * GiB), 4 * GiB) == (
        "model requires more system memory (9.5 GiB) than is available (4.0 GiB)"
    )


def test_check_system_memory_counts_swap() -> None:
    result = run(MODEL, [])
    need = result.total_size
    check_system_memory(result, SystemMemory(total=GiB, free=need - 10, free_swap=10))
    with pytest.raises(InsufficientSystemMemory) as info:
        check_system_memory(result, SystemMemory(total=GiB, free=need - 10, free_swap=9))
    assert str(info.value) == system_memory_message(need, need - 1)
    assert str(info.value).startswith("model requires more system memory (")


def test_plan_load_cpu_requires_full_fit_when_others_are_loaded() -> None:
    need = run(MODEL, []).total_size
    short = SystemMemory(total=8 * GiB, free=need - 1, free_swap=8 * GiB)
    with pytest.raises(LoadRequiredFull, match="more system memory than is currently available"):
        plan_load(MODEL, [], short, OPTIONS, require_full=True)
    # Alone, a model that fits only with swap is loaded anyway.
    plan = plan_load(MODEL, [], short, OPTIONS, require_full=False)
    assert plan.gpus == () and plan.num_gpu == 0 and plan.estimate.layers == 0


def test_plan_load_refuses_more_than_ram_plus_swap() -> None:
    with pytest.raises(InsufficientSystemMemory, match=r"than is available \("):
        plan_load(MODEL, [], SystemMemory(total=GiB, free=1000), OPTIONS, require_full=False)


def test_plan_load_gpu() -> None:
    ram = SystemMemory(total=64 * GiB, free=32 * GiB)
    gpu = cuda(0, 40 * GiB)
    plan = plan_load(MODEL, [gpu], ram, OPTIONS, require_full=True)
    assert plan.gpus == (gpu,) and plan.num_gpu == BLOCKS + 1

    partial_gpu = cuda(0, MINIMUM + 4 * LAYER_SIZE + GRAPH_PARTIAL)
    with pytest.raises(LoadRequiredFull, match="unable to load full model on GPU"):
        plan_load(MODEL, [partial_gpu], ram, OPTIONS, require_full=True)
    plan = plan_load(MODEL, [partial_gpu], ram, OPTIONS, require_full=False)
    assert plan.gpus == (partial_gpu,) and 0 < plan.num_gpu < BLOCKS + 1

    useless = cuda(0, 100 * MiB)
    plan = plan_load(MODEL, [useless], ram, OPTIONS, require_full=False)
    assert plan.gpus == () and plan.num_gpu == 0

    cpu_only = LoadOptions(num_ctx=2048, num_gpu=0)
    plan = plan_load(MODEL, [gpu], ram, cpu_only, require_full=True)
    assert plan.gpus == () and plan.estimate.vram_size == 0


# --- scheduler bookkeeping -----------------------------------------------------------------------


def test_update_free_space_matches_ollama() -> None:
    # TestSchedUpdateFreeSpace: two GPUs, two runners.
    gpu1 = GPUInfo(index=0, id="1", name="a", total_memory=1000, free_memory=900)
    gpu2 = GPUInfo(index=1, id="2", name="b", total_memory=2000, free_memory=1900)
    runner1 = {"1": 50, "2": 50}
    runner2 = {"1": 125, "2": 75}
    updated = update_free_space([gpu1, gpu2], [runner1, runner2])
    assert [g.free_memory for g in updated] == [1000 - 50 - 125, 2000 - 50 - 75]


def test_update_free_space_keeps_the_smaller_figure() -> None:
    gpu = GPUInfo(index=0, id="g", name="a", total_memory=1000, free_memory=300)
    assert update_free_space([gpu], [{"g": 100}])[0].free_memory == 300
    assert update_free_space([gpu], [{"g": 2000}])[0].free_memory == 0
    assert update_free_space([gpu], [])[0] == gpu


def test_vram_recovered_fraction() -> None:
    assert not vram_recovered(1000, 1000 + 750, 1000)  # exactly 75 % is not enough
    assert vram_recovered(1000, 1000 + 751, 1000)
    assert not vram_recovered(1000, 900, 1000)  # free went down
    assert vram_recovered(0, 801, 1000, fraction=0.8)
    assert not vram_recovered(0, 800, 1000, fraction=0.8)
    assert vram_recovered(5, 5, 0)  # nothing was held, nothing to wait for


def test_needs_vram_recovery() -> None:
    assert not needs_vram_recovery([])
    assert not needs_vram_recovery([fake_gpu(integrated=True)])
    assert not needs_vram_recovery([fake_gpu(library="metal")])
    assert needs_vram_recovery([fake_gpu()])
    assert needs_vram_recovery([fake_gpu(0, integrated=True), fake_gpu(1)])


# --- the real default model ----------------------------------------------------------------------


def test_real_default_model_cpu_estimate() -> None:
    path = cache_dir() / GGUF_NAME
    if not path.exists():
        pytest.fail(
            f"the default model is missing at {path}; fetch it first "
            "(trio_ollama.store.default_model.fetch_default_gguf)"
        )
    model = read_gguf_info(path)
    result = estimate(model, (), num_ctx=4096, num_parallel=1, num_batch=512, num_gpu=-1)

    # SmolLM2-135M: 30 blocks, 3 KV heads of 64, f16 cache, tied output (token_embd).
    weights = model.weights_size
    assert 96_000_000 < weights < 97_000_000
    kv = 30 * 4096 * (3 * 64) * 2 * 2  # layers * ctx * (kv heads * head dim) * (K and V) * f16
    assert kv == 94_371_840
    assert result.kv == kv
    assert result.layers == 0 and result.vram_size == 0
    # The total is made of: every block's weights and cache, output_norm + token_embd (the tied
    # output), and the compute graph for a 512-token batch, which on a CPU-only load lives in RAM:
    # max(4*512*(1 + 4*576 + 4096*(1 + 9)), 4*512*(576 + 49152)) = 101,842,944 bytes.
    graph = 4 * 512 * (576 + 49152)
    assert result.cpu_graph == graph
    assert result.memory_weights + result.memory_layer_output == weights
    assert result.total_size == weights + kv + graph
    assert result.total_size > weights + kv
