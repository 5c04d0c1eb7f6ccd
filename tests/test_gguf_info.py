"""GGUF header facts without loading weights, and clear errors for files that are not GGUF."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from tests.ggufs import write_tiny_gguf
from trio_ollama.gguf_info import ArraySummary, GGUFError, read_gguf_info
from trio_ollama.gocompat.format import human_number


def test_real_model_facts(default_gguf: Path) -> None:
    info = read_gguf_info(default_gguf)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.block_count == 30
    assert info.embedding_length == 576
    assert (info.head_count, info.head_count_kv) == (9, 3)
    assert (info.key_length, info.value_length) == (64, 64)
    assert info.vocab_size == 49152
    assert info.file_type_name == "Q4_1"
    assert info.parameter_count == 134_515_008
    assert info.parameter_size == "134.52M"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.metadata["tokenizer.ggml.tokens"] == ArraySummary("string", 49152)
    layers = info.layer_sizes()
    assert sorted(layers) == list(range(30))
    # Every tensor byte is accounted for, and the data ends exactly at the end of the file.
    assert info.weights_size == sum(t.nbytes for t in info.tensors)
    last = max(info.tensors, key=lambda t: t.offset)
    assert info.data_offset + last.offset + last.nbytes == default_gguf.stat().st_size
    assert info.weights_size == sum(layers.values()) + info.tensor_bytes("token_embd") + 2304


def test_header_only_parse_of_a_262k_vocabulary_is_fast(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "big.gguf", vocab=262_144)
    started = time.perf_counter()
    info = read_gguf_info(path)
    elapsed = time.perf_counter() - started
    assert info.vocab_size == 262_144
    # Behaviour, not a benchmark: a full decode of the vocabulary takes ~10 s here; the header
    # path takes ~30 ms. One second separates the two by a wide margin on any machine.
    assert elapsed < 1.0, f"header parse took {elapsed:.2f}s"


def test_synthetic_facts(tmp_path: Path) -> None:
    info = read_gguf_info(write_tiny_gguf(tmp_path / "m.gguf", blocks=3, embd=8))
    assert info.block_count == 3
    assert info.layer_sizes() == {0: 256, 1: 256, 2: 256}
    assert info.file_type_name == "F32"
    assert info.parameter_count == 3 * 64 + 8


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1K"),
        (1001, "1K"),
        (1_000_000, "1M"),
        (125_000_000, "125M"),
        (500_500_000, "500.50M"),
        (500_550_000, "500.55M"),
        (1_000_000_000, "1B"),
        (2_800_000_000, "2.8B"),
        (2_850_000_000, "2.9B"),
        (1_000_000_000_000, "1000B"),
    ],
)
def test_human_number(n: int, text: str) -> None:
    assert human_number(n) == text


def _header(version: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"PK\x03\x04 not a gguf", "bad magic"),
        (b"GGU", "bad magic"),
        (_header(1), "unsupported GGUF version 1"),
        (_header(99), "unsupported GGUF version 99"),
        (b"GGUF" + struct.pack("<I", 3) + b"\x01\x02", "truncated"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 10**12), "invalid GGUF file"),
        (
            b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 3) + b"key"
            + struct.pack("<I", 77),
            "unknown value type 77",
        ),
    ],
)  # fmt: skip
def test_malformed(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match=message):
        read_gguf_info(path)


@pytest.mark.parametrize("fraction", [0.0001, 0.001, 0.01, 0.3, 0.99])
def test_truncated_real_model(default_gguf: Path, tmp_path: Path, fraction: float) -> None:
    data = default_gguf.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf_info(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf_info(tmp_path / "nope.gguf")


def test_big_endian_is_read(tmp_path: Path) -> None:
    key = b"general.architecture"
    value = b"llama"
    body = struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", len(key)) + key
    body += struct.pack(">I", 8) + struct.pack(">Q", len(value)) + value
    path = tmp_path / "be.gguf"
    path.write_bytes(b"GGUF" + body)
    assert read_gguf_info(path).architecture == "llama"
