"""Model facts from a GGUF file's header, without loading weights or decoding the vocabulary.

`gguf.GGUFReader` decodes every token string (about 2 s for a 49k vocabulary, 10 s for 262k);
here big arrays are skipped by seeking, so any model's header reads in tens of milliseconds.
The `gguf` package still supplies the format's constants and tensor sizes.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import gguf

from trio_ollama.gocompat.format import human_number

SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4
# Arrays longer than this are kept as their length only (vocabularies, merges, scores).
ARRAY_KEEP_LIMIT = 1024

_SCALARS: dict[gguf.GGUFValueType, str] = {
    gguf.GGUFValueType.UINT8: "B",
    gguf.GGUFValueType.INT8: "b",
    gguf.GGUFValueType.UINT16: "H",
    gguf.GGUFValueType.INT16: "h",
    gguf.GGUFValueType.UINT32: "I",
    gguf.GGUFValueType.INT32: "i",
    gguf.GGUFValueType.FLOAT32: "f",
    gguf.GGUFValueType.BOOL: "?",
    gguf.GGUFValueType.UINT64: "Q",
    gguf.GGUFValueType.INT64: "q",
    gguf.GGUFValueType.FLOAT64: "d",
}
_LAYER = re.compile(r"^blk\.(\d+)\.")


class GGUFError(ValueError):
    """The file is not a GGUF this project can read; the message says why."""


@attrs.frozen
class ArraySummary:
    """A long metadata array, kept as its element type and length."""

    item_type: str
    length: int


@attrs.frozen
class TensorInfo:
    name: str
    ggml_type: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


def file_type_name(file_type: int | None) -> str:
    """`general.file_type` as Ollama prints it: `Q4_1`, `Q4_K_M`, `F16`."""
    if file_type is None:
        return "unknown"
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


@attrs.frozen
class GGUFInfo:
    """What the store, the API and the memory estimate need to know about one GGUF."""

    version: int
    metadata: Mapping[str, Any]
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def arch_get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def _arch_int(self, key: str, default: int = 0) -> int:
        value = self.arch_get(key, default)
        if isinstance(value, list | tuple):
            return max(value, default=default)
        return int(value)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def kind(self) -> str:
        """`general.type`: `model`, `adapter` or `projector` (empty when not set)."""
        return str(self.metadata.get("general.type", ""))

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return None if value is None else int(value)

    @property
    def file_type_name(self) -> str:
        return file_type_name(self.file_type)

    @property
    def context_length(self) -> int:
        return self._arch_int("context_length")

    @property
    def block_count(self) -> int:
        return self._arch_int("block_count")

    @property
    def embedding_length(self) -> int:
        return self._arch_int("embedding_length")

    @property
    def feed_forward_length(self) -> int:
        return self._arch_int("feed_forward_length")

    @property
    def head_count(self) -> int:
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int:
        return self._arch_int("attention.head_count_kv", self.head_count)

    @property
    def key_length(self) -> int:
        default = self.embedding_length // self.head_count if self.head_count else 0
        return self._arch_int("attention.key_length", default)

    @property
    def value_length(self) -> int:
        default = self.embedding_length // self.head_count if self.head_count else 0
        return self._arch_int("attention.value_length", default)

    @property
    def vocab_size(self) -> int:
        explicit = self.arch_get("vocab_size")
        if explicit is not None:
            return int(explicit)
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArraySummary):
            return tokens.length
        return len(tokens) if isinstance(tokens, list) else 0

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def pooling_type(self) -> int | None:
        value = self.arch_get("pooling_type")
        return None if value is None else int(value)

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def parameter_size(self) -> str:
        return human_number(self.parameter_count)

    def layer_sizes(self) -> dict[int, int]:
        """Bytes of weights per `blk.N` layer, which the memory estimate places layer by layer."""
        sizes: dict[int, int] = {}
        for tensor in self.tensors:
            match = _LAYER.match(tensor.name)
            if match:
                index = int(match.group(1))
                sizes[index] = sizes.get(index, 0) + tensor.nbytes
        return sizes

    def tensor_bytes(self, prefix: str) -> int:
        return sum(t.nbytes for t in self.tensors if t.name.startswith(prefix))

    @property
    def weights_size(self) -> int:
        return sum(t.nbytes for t in self.tensors)


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, endian: str) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.endian = endian

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.end:
            raise GGUFError(f"truncated GGUF file: {what} runs past the end at byte {self.pos}")

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size, what)
        (value,) = struct.unpack_from(self.endian + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str:
        length = self.unpack("Q", what)
        self.need(length, what)
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        buf, pos, end, fmt = self.buf, self.pos, self.end, self.endian + "Q"
        unpack_from = struct.unpack_from
        for _ in range(count):
            if pos + 8 > end:
                self.pos = pos
                self.need(8, what)
            pos += 8 + unpack_from(fmt, buf, pos)[0]
        if pos > end:
            self.pos = end
            raise GGUFError(f"truncated GGUF file: {what} runs past the end")
        self.pos = pos


def _value_type(raw: int, what: str) -> gguf.GGUFValueType:
    try:
        return gguf.GGUFValueType(raw)
    except ValueError:
        raise GGUFError(f"invalid GGUF file: unknown value type {raw} for {what}") from None


def _read_value(cur: _Cursor, vtype: gguf.GGUFValueType, key: str, limit: float) -> Any:
    if vtype == gguf.GGUFValueType.STRING:
        return cur.string(key)
    if vtype == gguf.GGUFValueType.ARRAY:
        item_type = _value_type(cur.unpack("I", key), key)
        count = cur.unpack("Q", key)
        if item_type == gguf.GGUFValueType.STRING:
            if count > limit:
                cur.skip_strings(count, key)
                return ArraySummary(item_type.name.lower(), count)
            return [cur.string(key) for _ in range(count)]
        if item_type == gguf.GGUFValueType.ARRAY:
            items = [_read_value(cur, item_type, key, limit) for _ in range(count)]
            return items if count <= limit else ArraySummary("array", count)
        fmt = _SCALARS[item_type]
        size = struct.calcsize(fmt) * count
        cur.need(size, key)
        if count > limit:
            cur.pos += size
            return ArraySummary(item_type.name.lower(), count)
        values = list(struct.unpack_from(f"{cur.endian}{count}{fmt}", cur.buf, cur.pos))
        cur.pos += size
        return values
    return cur.unpack(_SCALARS[vtype], key)


def _tensor_nbytes(ggml_type: gguf.GGMLQuantizationType, shape: tuple[int, ...], name: str) -> int:
    block_size, type_size = gguf.GGML_QUANT_SIZES[ggml_type]
    n = math.prod(shape)
    if shape and shape[0] % block_size:
        raise GGUFError(f"invalid GGUF file: tensor {name!r} row is not a whole number of blocks")
    return n // block_size * type_size


def parse_gguf_buffer(
    buf: mmap.mmap | bytes, array_limit: int | None = ARRAY_KEEP_LIMIT
) -> GGUFInfo:
    """Parse a GGUF image. Arrays longer than `array_limit` (None: no limit) are skipped."""
    limit: float = math.inf if array_limit is None else array_limit
    if len(buf) < 4 or bytes(buf[:4]) != b"GGUF":
        raise GGUFError("not a GGUF file (bad magic)")
    cur = _Cursor(buf, "<")
    cur.pos = 4
    version = cur.unpack("I", "version")
    if version & 0xFFFF == 0 and version:
        cur.endian = ">"
        cur.pos = 4
        version = cur.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError(
            f"unsupported GGUF version {version} (supported: "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    n_tensors = cur.unpack("Q", "tensor count")
    n_kv = cur.unpack("Q", "metadata count")
    # Each entry takes at least 8+4 bytes; a count beyond that is a lie, not a big model.
    if (n_tensors + n_kv) * 12 > cur.end:
        raise GGUFError(f"invalid GGUF file: {n_kv} metadata entries and {n_tensors} tensors")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key")
        vtype = _value_type(cur.unpack("I", key), key)
        metadata[key] = _read_value(cur, vtype, key, limit)
    raw_tensors = []
    for _ in range(n_tensors):
        name = cur.string("tensor name")
        n_dims = cur.unpack("I", name)
        if n_dims > MAX_DIMS:
            raise GGUFError(f"invalid GGUF file: tensor {name!r} has {n_dims} dimensions")
        shape = tuple(cur.unpack("Q", name) for _ in range(n_dims))
        raw_type = cur.unpack("I", name)
        try:
            ggml_type = gguf.GGMLQuantizationType(raw_type)
        except ValueError:
            raise GGUFError(
                f"invalid GGUF file: tensor {name!r} has unknown type {raw_type}"
            ) from None
        offset = cur.unpack("Q", name)
        raw_tensors.append((name, ggml_type, shape, offset))
    alignment = int(metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT)) or 1
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = []
    for name, ggml_type, shape, offset in raw_tensors:
        nbytes = _tensor_nbytes(ggml_type, shape, name)
        if data_offset + offset + nbytes > cur.end:
            raise GGUFError(f"truncated GGUF file: tensor {name!r} data runs past the end")
        tensors.append(TensorInfo(name, ggml_type.name, shape, offset, nbytes))
    return GGUFInfo(
        version=version,
        metadata=metadata,
        tensors=tuple(tensors),
        data_offset=data_offset,
        file_size=cur.end,
    )


def read_gguf_info(path: str | Path, array_limit: int | None = ARRAY_KEEP_LIMIT) -> GGUFInfo:
    """Parse the header of the GGUF at `path`. Raises `GGUFError` with a reason.

    `array_limit=None` decodes every array (the vocabulary too: seconds for a large one).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            if size == 0:
                raise GGUFError(f"not a GGUF file: {path} is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return parse_gguf_buffer(buf, array_limit)
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror or exc}") from exc


_CACHE: dict[tuple[str, int, int], GGUFInfo] = {}
_CACHE_LIMIT = 64


def gguf_info_cached(path: Path) -> GGUFInfo:
    """`read_gguf_info`, cached per file identity: blobs are content-addressed and never change."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    info = _CACHE.get(key)
    if info is None:
        info = read_gguf_info(path)
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = info
    return info


def is_gguf(path: str | Path) -> bool:
    try:
        with Path(path).open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False
