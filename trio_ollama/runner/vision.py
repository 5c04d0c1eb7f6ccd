"""Images in a prompt: a projector loaded with llama.cpp's multimodal library (`mtmd`), and a
prompt with `[img-N]` tags turned into segments of text tokens and image chunks.

The server writes a tag where the template puts each image (Ollama's `[img-N]`, N counting the
request's images from 0); here each tag becomes the chunks mtmd makes of that image for this
projector (some families wrap an image in tokens of their own, which mtmd adds). An image chunk
cannot share a batch with tokens: the engine evaluates it alone, with
`mtmd_helper_eval_chunk_single` (encode, then decode the embeddings into the sequence, with the
positions and attention the model wants).

Images are decoded with the stb_image that libmtmd carries (`stbi_load_from_memory`), then given
to mtmd as RGB bitmaps. mtmd's own `mtmd_helper_bitmap_init_from_buf` would do the same for an
image, but for bytes stb cannot read it tries audio, then launches `ffprobe` on them as a video:
a runner must not start programs on a client's bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
from collections.abc import Sequence
from typing import Any

import attrs

from trio_ollama.images import MAX_PIXELS
from trio_ollama.runner.interface import InvalidRequest

TAG = re.compile(r"\[img-(\d+)\]")


class ProjectorError(Exception):
    """The projector cannot be loaded with this model."""


@attrs.frozen
class ImageChunk:
    """One image as mtmd prepared it: evaluated alone, taking `n_pos` positions and counting
    `n_tokens` tokens (the same but for M-RoPE models). `key` names it in a slot's cache."""

    chunk: int  # an `mtmd_input_chunk *`, owned by `chunks`
    n_tokens: int
    n_pos: int
    key: str


Segment = list[int] | ImageChunk


def positions(segments: Sequence[Segment]) -> int:
    return sum(s.n_pos if isinstance(s, ImageChunk) else len(s) for s in segments)


def split_prompt(prompt: str, n_images: int) -> list[str | int]:
    """The prompt as text and image indexes, in order: Ollama's runner reads `[img-N]` tags
    this way. A tag for an image the request does not have is the request's fault."""
    parts: list[str | int] = []
    start = 0
    for match in TAG.finditer(prompt):
        index = int(match.group(1))
        if index >= n_images:
            raise InvalidRequest(f"invalid image index: {index}")
        parts.append(prompt[start : match.start()])
        parts.append(index)
        start = match.end()
    parts.append(prompt[start:])
    return [p for p in parts if p != ""]


def cut_segments(segments: list[Segment], n_ctx: int, num_keep: int) -> list[Segment] | None:
    """Ollama's cut (`runner.window.cut`) for a prompt with images: its first `num_keep`
    positions and as many of the most recent as fit, images kept or dropped whole. None when
    even the newest part cannot fit (an image larger than the context)."""
    if positions(segments) <= n_ctx:
        return segments
    head: list[Segment] = []
    keep = min(max(num_keep, 0), n_ctx - 1)
    for seg in segments:
        if keep <= 0:
            break
        if isinstance(seg, ImageChunk):
            break  # an image is never split: the kept head stops before it
        kept = seg[:keep]
        head.append(kept)
        keep -= len(kept)
    room = n_ctx - positions(head)
    tail: list[Segment] = []
    for seg in reversed(segments):
        size = seg.n_pos if isinstance(seg, ImageChunk) else len(seg)
        if size <= room:
            tail.append(seg)
            room -= size
            continue
        if not isinstance(seg, ImageChunk) and room > 0:
            tail.append(seg[len(seg) - room :])
        break
    tail.reverse()
    if not tail or positions(tail) == 0:
        return None
    return head + tail


def cache_keys(segments: Sequence[Segment]) -> list[int | str]:
    """One entry per position, as a slot's cache records it: a token id, or an image's key and
    the position's place in it, so that a prefix match stops at the first image that differs."""
    keys: list[int | str] = []
    for seg in segments:
        if isinstance(seg, ImageChunk):
            keys += [f"{seg.key}:{k}" for k in range(seg.n_pos)]
        else:
            keys += seg
    return keys


def skip_positions(segments: Sequence[Segment], n: int) -> list[Segment]:
    """The segments after their first `n` positions (a slot's cache holds those), `n` never
    inside an image."""
    rest: list[Segment] = []
    for seg in segments:
        size = seg.n_pos if isinstance(seg, ImageChunk) else len(seg)
        if n >= size:
            n -= size
            continue
        if n:
            assert not isinstance(seg, ImageChunk), "a cached prefix ends inside an image"
            seg = seg[n:]
            n = 0
        rest.append(seg)
    return rest


def inside_image(keys: Sequence[int | str], at: int) -> bool:
    """Whether position `at` is an image's, but not its first: a cached prefix cannot end
    there, since an image is evaluated whole."""
    key = keys[at] if at < len(keys) else 0
    return isinstance(key, str) and not key.endswith(":0")


class Projector:
    """An mtmd context for one text model and its projector; used from the engine's step
    thread only (tokenizing runs there too)."""

    def __init__(
        self, llama: Any, model: Any, path: str, *, n_threads: int, use_gpu: bool, log: Any
    ) -> None:
        from llama_cpp import mtmd_cpp

        self.M = mtmd_cpp
        self.L = llama
        # Into `logging` with the rest of llama.cpp's log (the compute buffer sizes are read
        # from it), not onto the runner's stderr.
        mtmd_cpp.mtmd_log_set(log, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(log, ctypes.c_void_p(0))
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = n_threads
        self.ctx = mtmd_cpp.mtmd_init_from_file(path.encode(), model, params)
        if not self.ctx:
            raise ProjectorError(f"failed to load projector {path}")
        if not mtmd_cpp.mtmd_support_vision(self.ctx):
            self.close()
            raise ProjectorError(f"projector {path} has no vision encoder")
        self.mrope = bool(mtmd_cpp.mtmd_decode_use_mrope(self.ctx))
        lib = mtmd_cpp._libmtmd  # stb_image's functions are exported there
        self._info = lib.stbi_info_from_memory
        self._info.argtypes = [ctypes.c_char_p, ctypes.c_int] + [ctypes.POINTER(ctypes.c_int)] * 3
        self._info.restype = ctypes.c_int
        self._load = lib.stbi_load_from_memory
        self._load.argtypes = (
            [ctypes.c_char_p, ctypes.c_int] + [ctypes.POINTER(ctypes.c_int)] * 3 + [ctypes.c_int]
        )
        self._load.restype = ctypes.POINTER(ctypes.c_uint8)
        self._free = lib.stbi_image_free
        self._free.argtypes = [ctypes.c_void_p]
        self._reason = lib.stbi_failure_reason
        self._reason.restype = ctypes.c_char_p

    def close(self) -> None:
        if self.ctx:
            self.M.mtmd_free(self.ctx)
            self.ctx = None

    def bitmap(self, data: bytes, index: int) -> Any:
        """An mtmd bitmap of the image `data`, or `InvalidRequest` saying why there is none."""
        x, y, n = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        if not data or len(data) >= 2**31:
            raise InvalidRequest(f"invalid image input: image {index} is empty or too large")
        if not self._info(data, len(data), ctypes.byref(x), ctypes.byref(y), ctypes.byref(n)):
            raise InvalidRequest(f"invalid image input: image {index}: {self._why()}")
        if x.value * y.value > MAX_PIXELS:
            raise InvalidRequest(
                f"invalid image input: image {index} is {x.value}x{y.value} pixels, "
                f"over the limit of {MAX_PIXELS}"
            )
        pixels = self._load(data, len(data), ctypes.byref(x), ctypes.byref(y), ctypes.byref(n), 3)
        if not pixels:
            raise InvalidRequest(f"invalid image input: image {index}: {self._why()}")
        try:
            bitmap = self.M.mtmd_bitmap_init(x.value, y.value, pixels)
        finally:
            self._free(pixels)
        if not bitmap:
            raise InvalidRequest(f"invalid image input: image {index} could not be used")
        # mtmd names an image's chunk by this id; the slot cache compares images by it.
        self.M.mtmd_bitmap_set_id(bitmap, hashlib.sha256(data).hexdigest().encode())
        return bitmap

    def _why(self) -> str:
        reason = self._reason()
        return reason.decode(errors="replace") if reason else "not an image"

    def tokenize(
        self,
        prompt: str,
        images: Sequence[bytes],
        prefix: Sequence[int],
    ) -> tuple[Any, list[Segment]]:
        """The chunks of `prompt` with its `[img-N]` tags replaced by those images, and the
        prompt as segments (`prefix`, a previous context, first). The chunks own the image
        chunks the segments point to: free them with `free_chunks` when done."""
        M = self.M
        parts = split_prompt(prompt, len(images))
        bitmaps: list[Any] = []
        keep_alive: list[Any] = []  # what the parts point to, until mtmd has read it
        try:
            for part in parts:
                if isinstance(part, int):
                    bitmaps.append(self.bitmap(images[part], part))
            chunks = M.mtmd_input_chunks_init()
            items = (ctypes.POINTER(M.mtmd_input_part) * len(parts))()
            bitmap_iter = iter(bitmaps)
            for i, part in enumerate(parts):
                if isinstance(part, int):
                    item = M.mtmd_input_part(None, next(bitmap_iter))
                else:
                    data = part.encode()
                    text = M.mtmd_input_text(data, len(data), True, True)
                    keep_alive += [data, text]
                    item = M.mtmd_input_part(ctypes.pointer(text), None)
                keep_alive.append(item)
                items[i] = ctypes.pointer(item)
            # Special tokens added as for a prompt without images (`window` tokenizes with
            # them, after a context too).
            rc = M.mtmd_tokenize_from_parts(self.ctx, chunks, items, len(parts), True)
        finally:
            for bitmap in bitmaps:
                M.mtmd_bitmap_free(bitmap)
        if rc != 0:
            M.mtmd_input_chunks_free(chunks)
            raise InvalidRequest(f"invalid image input: the projector refused it ({rc})")
        segments: list[Segment] = [list(prefix)] if prefix else []
        for k in range(M.mtmd_input_chunks_size(chunks)):
            chunk = M.mtmd_input_chunks_get(chunks, k)
            if M.mtmd_input_chunk_get_type(chunk) == M.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                ids = M.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                tokens = [int(ids[t]) for t in range(n.value)]
                if segments and not isinstance(segments[-1], ImageChunk):
                    segments[-1] = [*segments[-1], *tokens]
                else:
                    segments.append(tokens)
                continue
            if M.mtmd_input_chunk_get_type(chunk) != M.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                M.mtmd_input_chunks_free(chunks)
                raise InvalidRequest("invalid image input: only images are supported")
            key = M.mtmd_input_chunk_get_id(chunk)
            segments.append(
                ImageChunk(
                    chunk=chunk,
                    n_tokens=int(M.mtmd_input_chunk_get_n_tokens(chunk)),
                    n_pos=int(M.mtmd_input_chunk_get_n_pos(chunk)),
                    key=key.decode() if key else f"image-{k}",
                )
            )
        return chunks, [s for s in segments if not (isinstance(s, list) and not s)]

    def free_chunks(self, chunks: Any) -> None:
        if chunks:
            self.M.mtmd_input_chunks_free(chunks)

    def evaluate(
        self, lctx: Any, image: ImageChunk, n_past: int, seq: int, n_batch: int, logits: bool
    ) -> int:
        """Encode `image` and decode its embeddings into sequence `seq` from position `n_past`;
        0 when done, else llama.cpp's error code."""
        new_n_past = self.L.llama_pos(0)
        return int(
            self.M.mtmd_helper_eval_chunk_single(
                self.ctx, lctx, image.chunk, n_past, seq, n_batch, logits, ctypes.byref(new_n_past)
            )
        )
