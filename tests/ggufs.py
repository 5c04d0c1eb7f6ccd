"""Small GGUF files for tests, written with the `gguf` package."""

from __future__ import annotations

import shutil
from pathlib import Path

import gguf
import numpy as np


def write_tiny_gguf(
    path: Path,
    *,
    arch: str = "llama",
    vocab: int = 16,
    blocks: int = 2,
    embd: int = 8,
    extra: dict[str, str] | None = None,
    pooling_type: int | None = None,
) -> Path:
    """A structurally valid GGUF: metadata, a vocabulary and one small tensor per block."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(blocks)
    writer.add_context_length(128)
    writer.add_embedding_length(embd)
    writer.add_feed_forward_length(embd * 2)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    for key, value in (extra or {}).items():
        writer.add_string(key, value)
    if pooling_type is not None:
        writer.add_uint32(f"{arch}.pooling_type", pooling_type)
    for i in range(blocks):
        writer.add_tensor(f"blk.{i}.attn_q.weight", np.ones((embd, embd), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((embd,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def variant_of(source: Path, target: Path, salt: bytes = b"\0\0\0\0") -> Path:
    """The same model with different bytes (trailing padding), hence a different digest."""
    shutil.copyfile(source, target)
    with target.open("ab") as f:
        f.write(salt)
    return target
