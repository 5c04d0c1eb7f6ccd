"""A projector GGUF and images for the vision tests, made here rather than downloaded.

The projector is llama.cpp's `mlp` type (LLaVA-1.5's): a CLIP vision tower (patch embedding,
position embeddings, transformer blocks) whose patch features an MLP maps to the text model's
embedding width. Its weights are random, so what the model "sees" means nothing; what it makes
testable is the path: the image decoded, encoded by the tower, its embeddings evaluated into
the sequence, and a different image changing what comes out.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import gguf
import numpy as np

IMAGE_SIZE = 32
PATCH_SIZE = 8
# One token per patch: llava's projector keeps every patch (there is no class token here).
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


def write_projector(path: Path, *, text_embd: int = 576, width: int = 32, seed: int = 0) -> Path:
    """A tiny `mlp` projector whose output width is `text_embd` (SmolLM2-135M's is 576).

    Two blocks, of which llava uses all but the last (the penultimate layer's features)."""
    rng = np.random.default_rng(seed)
    blocks, heads, ffn, hidden = 2, 2, width * 2, width * 2

    def weights(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "tiny random mlp projector (tests)")
    writer.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", width)
    writer.add_uint32("clip.vision.feed_forward_length", ffn)
    writer.add_uint32("clip.vision.projection_dim", text_embd)
    writer.add_uint32("clip.vision.block_count", blocks)
    writer.add_uint32("clip.vision.attention.head_count", heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    n_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
    # numpy shapes are ggml's reversed: a linear layer from n to m is (m, n).
    writer.add_tensor("v.patch_embd.weight", weights(width, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.position_embd.weight", weights(n_patches, width))
    writer.add_tensor("v.pre_ln.weight", np.ones(width, dtype=np.float32))
    writer.add_tensor("v.pre_ln.bias", np.zeros(width, dtype=np.float32))
    for i in range(blocks):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", weights(width, width))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", weights(width, scale=0.02))
        for name in ("ln1", "ln2"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", np.ones(width, dtype=np.float32))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", np.zeros(width, dtype=np.float32))
        writer.add_tensor(f"v.blk.{i}.ffn_up.weight", weights(ffn, width))
        writer.add_tensor(f"v.blk.{i}.ffn_up.bias", weights(ffn, scale=0.02))
        writer.add_tensor(f"v.blk.{i}.ffn_down.weight", weights(width, ffn))
        writer.add_tensor(f"v.blk.{i}.ffn_down.bias", weights(width, scale=0.02))
    writer.add_tensor("mm.0.weight", weights(hidden, width))
    writer.add_tensor("mm.0.bias", weights(hidden, scale=0.02))
    writer.add_tensor("mm.2.weight", weights(text_embd, hidden))
    writer.add_tensor("mm.2.bias", weights(text_embd, scale=0.02))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def png(width: int, height: int, seed: int = 0) -> bytes:
    """An RGB PNG of random pixels (a different picture for each seed)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rows = b"".join(b"\0" + pixels[y].tobytes() for y in range(height))
    return png_header(width, height) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR alone: what a file claiming those dimensions starts with."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
