"""The llama.cpp engine: one model, one context, `num_parallel` sequence slots, continuous batching.

`step` runs in a worker thread and is the only code that calls into the llama.cpp context. The
runner never calls `step` twice at once, and feeds requests and cancellations through
`submit`/`cancel`, which only queue them for the next step. `tokenize` and `detokenize` run on
the runner's Trio thread, while a step may be running: they read only the vocabulary (which
nothing changes after load), through buffers of their own; any state they shared with `step`
would need a lock, since a ctypes call lets go of the GIL (a shared piece buffer once mixed a
`detokenize`'s text into the streams being decoded).
"""

from __future__ import annotations

import base64
import codecs
import ctypes
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import trio

from trio_ollama.cpus import available_cpus
from trio_ollama.runner.attention import flash_attention_faster
from trio_ollama.runner.grammar import INVALID, FormatError, format_grammar
from trio_ollama.runner.interface import InvalidRequest, check_tokens
from trio_ollama.runner.protocol import (
    Completion,
    Done,
    Embed,
    Embedding,
    Load,
    Message,
    Piece,
    Ready,
    RequestFailed,
)
from trio_ollama.runner.repack import use_extra_buffers
from trio_ollama.runner.text import TextStream
from trio_ollama.runner.vision import (
    ImageChunk,
    Projector,
    ProjectorError,
    Segment,
    cache_keys,
    cut_segments,
    inside_image,
    positions,
    skip_positions,
)
from trio_ollama.runner.window import MARGIN, surely_longer, window

log = logging.getLogger(__name__)

# Prompt tokens admitted per step across all sequences, whether or not others decode. Small
# enough that a cancelled prompt leaves within one step (~0.6 s at 220 tok/s here) and decoding
# sequences keep streaming while a long prompt is processed. Larger steps are slower on this
# CPU, not faster: a 996-token prompt alone ran at 0.89x this speed in steps of 256 and 0.83x
# in steps of 512 (llama-server's), and a 159-token prompt gained nothing from one pass instead
# of 128 + 31 (1.006x); steps of 64 ran at 0.95x (in-process A/B, medians of paired ratios).
PROMPT_CHUNK = 128
# Prompt tokens a step takes while other sequences are decoding: a token budget per step, as in
# Sarathi-Serve. A step's time grows about linearly with its tokens on a CPU, so every decoding
# stream waits this many prompt tokens' worth between two of its tokens; 128 of them made a
# half-second stall in streams here. Swept with benchmarks.serve --decoding-chunks 128,32,8,4
# (docs/performance.md): 32 cut the inter-token p99 to a third (457-505 ms -> 151-190 ms at 4
# and 8 clients, bursts and a closed loop) with TTFT p50 and throughput within the noise; 8 and
# 4 cut it further (53-101 ms) but cost TTFT (up to 3x in a closed loop) and throughput
# (0.6-0.8x).
DECODING_PROMPT_CHUNK = 32
# Prompts that reach an idle runner together (a burst) are read together before any of them
# starts to stream, as llama-server reads them in one step: a stream that started early would
# wait for its neighbours' prompts between every two of its tokens (an inter-token gap p99 of
# 144-231 ms against llama-server's 42-63 at 4-16 clients), where holding its first token
# back costs it the same time once, before its first token. "Together" is within
# COHORT_WINDOW seconds of the first (a burst's requests reach the runner within tens of
# milliseconds); a cohort takes prompts up to COHORT_TOKENS (llama-server's batch: ~8 s of
# prompt on 2 cores; TRIO_OLLAMA_COHORT_TOKENS sets it, 0 for no cohorts). Other prompts
# are read beside the streams, DECODING_PROMPT_CHUNK a step.
COHORT_WINDOW = 0.25
COHORT_TOKENS = 2048
# With a KV cache per sequence, llama.cpp batches together only sequences whose ids run
# consecutively (`split_equal(sequential=true)`): each gap in the busy slots costs every step
# another pass over the weights. A slot that adds a gap is worth taking only for a prompt cache
# this many tokens longer.
RUN_COST_TOKENS = 64
# Another slot's cache is copied in for a start of the prompt at least this much longer than
# the chosen slot's own: copying a stream costs a few milliseconds, what a few tokens cost.
MIN_COPIED_TOKENS = 32
INPUT_TOO_LONG = "the input length exceeds the context length"
# llama.cpp's words, as Ollama passes them on (`api.generation.NO_VISION`).
NO_VISION = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
LLAMA_DEFAULT_SEED = 0xFFFFFFFF
_GGML_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # ggml's WARN and ERROR; the rest is debug
# llama.cpp's `llama_token_data`, for a whole vocabulary's logits in one numpy array.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_BUFFER_RE = re.compile(r"(\S+)\s+(model|KV|compute|output|RS) buffer size\s*=\s*([\d.]+) MiB")


class EngineError(Exception):
    """The engine cannot load or go on."""


def usable_threads(requested: int) -> int:
    """A thread count llama.cpp can live with: at least one, at most this machine's CPUs.
    More threads than CPUs only slow decoding down, and a million of them (`num_thread` is a
    client's option) would kill the runner."""
    return max(1, min(requested, available_cpus()))


@attrs.define
class _Slot:
    seq: int
    # What the KV cache holds for this sequence, one entry a position: a token id, or an
    # image's position (`vision.cache_keys`).
    tokens: list[int | str] = attrs.field(factory=list)
    last_used: float = 0.0
    busy: bool = False


@attrs.define
class _Active:
    request: Completion
    slot: _Slot
    sampler: Any
    stream: TextStream
    pending: list[int]
    prompt_count: int
    cached: int
    started: float
    first_token_at: float = 0.0
    next_token: int | None = None
    generated: int = 0
    # Only when logprobs are asked for: the sampler's grammar and penalties, kept in step with
    # it, to see the logits as it saw them; and the entries of tokens not yet sent.
    probe: Any = None
    logprobs: list[dict[str, Any]] = attrs.field(factory=list)
    pieces: list[bytes] = attrs.field(factory=list)  # the bytes of those tokens, in step
    # Greedy without a grammar: picked here from the logits, as the chain would pick.
    greedy: Greedy | None = None
    # Control tokens written as text (the request's `preserved`, as token ids).
    preserved: frozenset[int] = frozenset()
    # What follows `pending` in a prompt with images: image chunks, and the text after them;
    # `chunks` owns the images' mtmd chunks.
    later: deque[Segment] = attrs.field(factory=deque)
    chunks: Any = None
    image_tokens: int = 0
    # What a cohort member sampled while its cohort still reads prompts: sent when it is read.
    held: list[Message] = attrs.field(factory=list)

    def next_run(self) -> None:
        """Take the next text of the prompt into `pending`, once `pending` is done."""
        while not self.pending and self.later:
            text = self.later[0]
            if isinstance(text, ImageChunk):
                return
            self.later.popleft()
            self.pending = list(text)

    @property
    def prompting(self) -> bool:
        return bool(self.pending or self.later)


_LOG_CALLBACKS: list[Any] = []


class _LogCapture:
    """llama.cpp's log, routed to `logging` and scanned for the buffer sizes it allocated."""

    def __init__(self, llama: Any) -> None:
        self.lines: list[str] = []
        self._partial = ""

        @llama.llama_log_callback  # type: ignore[untyped-decorator]
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            self._partial += text.decode("utf-8", errors="replace")
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                self.lines.append(line)
                log.log(_GGML_LEVELS.get(level, logging.DEBUG), "llama.cpp: %s", line)
                if len(self.lines) > 2000:
                    del self.lines[:1000]

        # Kept for the process, not the engine: llama.cpp holds only the C pointer, and logs
        # through it whenever it next loads anything (a freed callback there is a segfault,
        # seen where a test loaded a model after an in-process engine was gone).
        self.callback = callback
        _LOG_CALLBACKS.append(callback)
        llama.llama_log_set(callback, ctypes.c_void_p(0))

    def buffer_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for line in self.lines:
            match = _BUFFER_RE.search(line)
            if match:
                kind = match.group(2)
                sizes[kind] = sizes.get(kind, 0) + int(float(match.group(3)) * 1024 * 1024)
        return sizes


class LlamaEngine:
    def __init__(self) -> None:
        import llama_cpp

        self.L = llama_cpp
        self._logs = _LogCapture(llama_cpp)
        self.model: Any = None
        self.ctx: Any = None
        self.vocab: Any = None
        self.batch: Any = None
        self.slots: list[_Slot] = []
        self.active: dict[int, _Active] = {}
        self.waiting: deque[Completion] = deque()
        self.embeds: deque[Embed] = deque()
        self.projector: Projector | None = None
        self._inbox: deque[tuple[str, Any]] = deque()
        self.n_ctx_seq = 0
        self.n_vocab = 0
        self.max_token_bytes = 0
        self.n_batch = 0
        self.flash_attention = False
        # TRIO_OLLAMA_DECODING_PROMPT_CHUNK (1 and up) and TRIO_OLLAMA_COHORT_TOKENS (0: none)
        # set these, for measuring them (benchmarks.serve --variant).
        self.decoding_prompt_chunk = measuring_knob(
            os.environ, "TRIO_OLLAMA_DECODING_PROMPT_CHUNK", DECODING_PROMPT_CHUNK, 1, PROMPT_CHUNK
        )
        self.cohort_limit = measuring_knob(
            os.environ, "TRIO_OLLAMA_COHORT_TOKENS", COHORT_TOKENS, 0, 1 << 20
        )
        # The requests of the cohort being read (COHORT_TOKENS), its prompt tokens, and when
        # its first request arrived; when each request waiting arrived.
        self.cohort: set[int] = set()
        self.cohort_tokens = 0
        self.cohort_since = 0.0
        self._arrived: dict[int, float] = {}
        self.n_embd = 0
        self.n_threads = available_cpus()
        self._pending_threads: int | None = None
        # `piece` runs on the worker thread (in `step`) and on the Trio thread (`detokenize`)
        # at once; its ctypes call lets go of the GIL, so one shared buffer would mix their text.
        self._buffers = threading.local()
        # A preserved string's token, or None where it is not one token of this vocabulary.
        self._preserved: dict[str, int | None] = {}

    # ----- load (worker thread)

    def load_sync(self, params: Load) -> Ready:
        L = self.L
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        mparams.n_gpu_layers = 999 if params.num_gpu < 0 else params.num_gpu
        mparams.main_gpu = params.main_gpu
        if params.use_mmap is not None:
            mparams.load_mode = (
                L.LLAMA_LOAD_MODE_MMAP if params.use_mmap else L.LLAMA_LOAD_MODE_NONE
            )
        # Repacked weights where this machine runs them safely (runner/repack.py).
        mparams.use_extra_bufts = use_extra_buffers(params.model_path)
        self.model = L.llama_model_load_from_file(params.model_path.encode(), mparams)
        if not self.model:
            raise EngineError(f"failed to load model {params.model_path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self.max_token_bytes = self._max_token_bytes()
        for adapter_path in params.adapters:
            adapter = L.llama_adapter_lora_init(self.model, adapter_path.encode())
            if not adapter:
                raise EngineError(f"failed to load adapter {adapter_path}")
            self._adapters = [*getattr(self, "_adapters", []), adapter]
        n_ctx_train = L.llama_model_n_ctx_train(self.model)
        num_ctx = max(4, min(params.num_ctx, n_ctx_train)) if n_ctx_train else params.num_ctx
        parallel = max(1, params.num_parallel)
        if params.num_thread > 0:
            self.n_threads = usable_threads(params.num_thread)
        cparams = L.llama_context_default_params()
        cparams.n_ctx = num_ctx * parallel
        cparams.n_seq_max = parallel
        cparams.kv_unified = False
        self.n_batch = max(1, min(params.num_batch, num_ctx))
        if params.embedding:
            self.n_batch = num_ctx
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        # Off unless asked for, as in Ollama, or, on the CPU where nobody said, unless this
        # machine decodes faster with it (runner/attention.py: it slowed decoding on one CPU
        # and sped it up on another). Context shift and batched greedy output work either way.
        self.flash_attention = params.flash_attention
        if params.flash_attention_auto and not params.flash_attention:
            mark = len(self._logs.lines)
            self.flash_attention = flash_attention_faster(
                L, self.model, params.model_path, self.n_threads
            )
            # The measuring contexts' buffers are not this runner's (Ready's KV and compute).
            del self._logs.lines[mark:]
        cparams.flash_attn_type = (
            L.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if self.flash_attention
            else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        if params.kv_cache_type in ("q8_0", "q4_0") and params.flash_attention:
            kv_type = L.GGML_TYPE_Q8_0 if params.kv_cache_type == "q8_0" else L.GGML_TYPE_Q4_0
            cparams.type_k = kv_type
            cparams.type_v = kv_type
        # The model's own pooling: asking for mean pooling on a causal LM costs ~13% decode
        # speed, so `_embed_one` averages token embeddings itself when the model has none.
        cparams.embeddings = False
        cparams.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise EngineError("failed to create the llama.cpp context (out of memory?)")
        for adapter in getattr(self, "_adapters", []):
            L.llama_set_adapter_lora(self.ctx, adapter, 1.0)
        projector_bytes = 0
        if params.projector_path:
            try:
                self.projector = Projector(
                    L, self.model, params.projector_path, n_threads=self.n_threads,
                    use_gpu=params.num_gpu != 0, log=self._logs.callback,
                )  # fmt: skip
            except ProjectorError as exc:
                raise EngineError(str(exc)) from exc
            projector_bytes = os.path.getsize(params.projector_path)
        # llama.cpp pads the cache (to 256 cells); the limit users asked for is the one to keep.
        self.n_ctx_seq = min(L.llama_n_ctx_seq(self.ctx), num_ctx)
        self.n_embd = L.llama_model_n_embd(self.model)
        self.batch = L.llama_batch_init(self.n_batch, 0, parallel)
        self.slots = [_Slot(seq=i) for i in range(parallel)]
        sizes = self._logs.buffer_sizes()
        # The projector's compute buffer is among the compute sizes mtmd logs; its weights are
        # its file's size (mtmd does not log them as a buffer).
        weights = (sizes.get("model") or L.llama_model_size(self.model)) + projector_bytes
        kv = sizes.get("KV", 0) + sizes.get("RS", 0)
        compute = sizes.get("compute", 0) + sizes.get("output", 0)
        return Ready(
            weights_bytes=int(weights),
            kv_bytes=int(kv),
            compute_bytes=int(compute),
            num_ctx=self.n_ctx_seq,
            num_parallel=parallel,
            n_ctx_train=n_ctx_train,
            n_vocab=self.n_vocab,
            n_embd=self.n_embd,
            gpu_layers=0 if params.num_gpu == 0 else params.num_gpu,
            pid=os.getpid(),
            max_token_bytes=self.max_token_bytes,
        )

    def _max_token_bytes(self) -> int:
        """The most bytes of text one token stands for, the bound `runner.window` cuts by; 0
        (no bound) for tokenizers that may drop text (WordPiece and Unigram normalize spaces
        and accents away, so a run of spaces can be no token at all)."""
        L = self.L
        if L.llama_vocab_type(self.vocab) not in (L.LLAMA_VOCAB_TYPE_SPM, L.LLAMA_VOCAB_TYPE_BPE):
            return 0
        return max((len(self.piece(t, special=True)) for t in range(self.n_vocab)), default=0)

    def close(self) -> None:
        L = self.L
        for slot_active in list(self.active.values()):
            self._release(slot_active)
        self.active.clear()
        if self.projector is not None:
            self.projector.close()
            self.projector = None
        if self.batch is not None:
            L.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None

    # ----- called on the Trio thread, between steps

    def submit(self, request: Completion) -> None:
        self._arrived[request.id] = time.monotonic()
        self._inbox.append(("submit", request))

    def submit_embed(self, request: Embed) -> None:
        self._inbox.append(("embed", request))

    def cancel(self, request_id: int) -> None:
        self._inbox.append(("cancel", request_id))

    def set_threads(self, n_threads: int) -> None:
        self._pending_threads = usable_threads(n_threads)

    @property
    def has_work(self) -> bool:
        return bool(self._inbox or self.active or self.waiting or self.embeds)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        data = text.encode()
        size = len(data) + 8
        while True:
            buf = (self.L.llama_token * size)()
            n = self.L.llama_tokenize(self.vocab, data, len(data), buf, size, add_special, True)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def piece(self, token: int, special: bool = False) -> bytes:
        """A token's bytes; `special` renders control tokens (`<|im_start|>`) as their text."""
        buffer = getattr(self._buffers, "piece", None)
        if buffer is None:  # this thread's own
            buffer = self._buffers.piece = ctypes.create_string_buffer(256)
        n = self.L.llama_token_to_piece(self.vocab, token, buffer, 256, 0, special)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = self.L.llama_token_to_piece(self.vocab, token, big, -n, 0, special)
            return big.raw[:n]
        return buffer.raw[:n]

    def preserved_ids(self, texts: Sequence[str]) -> frozenset[int]:
        """The tokens of `texts` that are one token each (llama-server's rule for its
        `preserved_tokens`); looked up once a string."""
        for text in texts:
            if text not in self._preserved:
                tokens = self.tokenize(text, add_special=False)
                self._preserved[text] = tokens[0] if len(tokens) == 1 else None
        return frozenset(t for text in texts if (t := self._preserved[text]) is not None)

    def detokenize(self, tokens: Sequence[int]) -> str:
        check_tokens(tokens, self.n_vocab)
        # Control tokens included: a returned `context` must tokenize back to the same tokens.
        pieces = b"".join(self.piece(t, special=True) for t in tokens)
        return pieces.decode("utf-8", errors="replace")

    async def load(self, params: Load) -> Ready:
        return await trio.to_thread.run_sync(self.load_sync, params)

    async def step(self) -> list[Message]:
        return await trio.to_thread.run_sync(self.step_sync)

    # ----- the decode step (worker thread)

    def step_sync(self) -> list[Message]:
        out: list[Message] = []
        self._drain_inbox(out)
        if self._pending_threads is not None:
            self.n_threads, self._pending_threads = self._pending_threads, None
            self.L.llama_set_n_threads(self.ctx, self.n_threads, self.n_threads)
        self._admit(out)
        if self.active:
            self._decode(out)
            self._eval_image(out)
            self._read_cohort(out)
        if self.embeds:
            self._embed_one(out)
        return out

    def _drain_inbox(self, out: list[Message]) -> None:
        while self._inbox:
            op, arg = self._inbox.popleft()
            if op == "submit":
                self.waiting.append(arg)
            elif op == "embed":
                self.embeds.append(arg)
            elif op == "cancel":
                self._arrived.pop(arg, None)
                self.waiting = deque(r for r in self.waiting if r.id != arg)
                self.embeds = deque(r for r in self.embeds if r.id != arg)
                if arg in self.active:
                    self._release(self.active.pop(arg))

    def _release(self, active: _Active) -> None:
        self.L.llama_sampler_free(active.sampler)
        if active.probe is not None:
            self.L.llama_sampler_free(active.probe)
        if active.chunks is not None and self.projector is not None:
            self.projector.free_chunks(active.chunks)
            active.chunks = None
        active.slot.busy = False
        active.slot.last_used = time.monotonic()

    def _pick_slot(self, tokens: Sequence[int | str]) -> tuple[_Slot, int] | None:
        free = [(slot, _shared(slot.tokens, tokens)) for slot in self.slots if not slot.busy]
        if not free:
            return None
        busy = {slot.seq for slot in self.slots if slot.busy}
        k = choose_slot([(slot.seq, common, slot.last_used) for slot, common in free], busy)
        return free[k]

    def _take_prefix(self, slot: _Slot, tokens: Sequence[int | str], common: int) -> int:
        """Where another slot, busy or not, holds a longer start of `tokens` than `slot` does
        (a system prompt every request repeats), its cache is copied into `slot` instead of
        computing that start again: returns how much of `tokens` `slot` now holds. llama.cpp
        copies a sequence's whole stream, at the next decode (milliseconds: a stream is tens
        of MB), then the copy is cut back to the shared start."""
        donor, best = None, common + MIN_COPIED_TOKENS - 1
        for other in self.slots:
            if other is not slot and (shared := _shared(other.tokens, tokens)) > best:
                donor, best = other, shared
        if donor is None:
            return common
        mem = self.L.llama_get_memory(self.ctx)
        self.L.llama_memory_seq_cp(mem, donor.seq, slot.seq, -1, -1)
        slot.tokens = donor.tokens[:best]
        log.debug("prefix copied seq=%d from seq=%d tokens=%d", slot.seq, donor.seq, best)
        return best

    def _admit(self, out: list[Message]) -> None:
        while self.waiting and any(not s.busy for s in self.slots):
            request = self.waiting.popleft()
            arrived = self._arrived.pop(request.id, time.monotonic())
            chunks = None
            try:
                check_tokens(request.tokens, self.n_vocab)
                if request.images:
                    chunks, segments = self._image_prompt(request)
                else:
                    # Only what the sequence can keep is tokenized: a 50 MB prompt costs as
                    # much as one that fills the window, not seconds of every stream's time.
                    fitted = window(
                        self.tokenize, request.prompt, prefix=request.tokens,
                        n_ctx=self.n_ctx_seq, num_keep=request.sampling.num_keep,
                        max_token_bytes=self.max_token_bytes, truncate=request.truncate,
                    )  # fmt: skip
                    segments = None if fitted is None else [fitted] if fitted else []
            except InvalidRequest as exc:
                out.append(RequestFailed(id=request.id, message=str(exc), invalid=True))
                continue
            except Exception as exc:  # a tokenizer failure is this request's, not the runner's
                out.append(RequestFailed(id=request.id, message=f"tokenize: {exc}"))
                continue
            failure = INPUT_TOO_LONG if segments is None else "empty prompt" if not segments else ""
            if not failure:
                try:
                    sampler = self._make_sampler(request)
                    probe = self._shaping_chain(request) if request.logprobs else None
                except FormatError as exc:
                    failure = str(exc)
            if failure or segments is None:
                if chunks is not None and self.projector is not None:
                    self.projector.free_chunks(chunks)
                out.append(RequestFailed(id=request.id, message=failure, invalid=True))
                continue
            keys = cache_keys(segments)
            picked = self._pick_slot(keys)
            assert picked is not None
            slot, common = picked
            common = self._take_prefix(slot, keys, common)
            common = min(common, len(keys) - 1)  # the last prompt token must be decoded
            while inside_image(keys, common):
                common -= 1
            mem = self.L.llama_get_memory(self.ctx)
            self.L.llama_memory_seq_rm(mem, slot.seq, common, -1)
            del slot.tokens[common:]
            slot.busy = True
            rest = deque(skip_positions(segments, common))
            images = sum(seg.n_tokens for seg in segments if isinstance(seg, ImageChunk))
            active = _Active(
                request=request,
                slot=slot,
                sampler=sampler,
                stream=TextStream(request.sampling.stop),
                pending=[],
                # Ollama counts the whole prompt, cached or not (clients bill by it), and an
                # image as the tokens it became.
                prompt_count=len(keys)
                - sum(seg.n_pos - seg.n_tokens for seg in segments if isinstance(seg, ImageChunk)),
                cached=common,
                started=time.monotonic(),
                probe=probe,
                greedy=Greedy.of(request, self.n_ctx_seq),
                preserved=self.preserved_ids(request.preserved),
                later=rest,
                chunks=chunks,
                image_tokens=images,
            )
            active.next_run()
            self._join_cohort(active, len(keys) - common, arrived)
            self.active[request.id] = active

    def _join_cohort(self, active: _Active, tokens: int, arrived: float) -> None:
        """`active` joins the cohort, or starts one, when no stream is running, it arrived with
        the cohort's first, and its prompt fits beside the rest."""
        streaming = any(
            not other.prompting and other.request.id not in self.cohort
            for other in self.active.values()
        )
        self.cohort &= self.active.keys()  # members cancelled
        if not self.cohort:
            self.cohort_tokens = 0
        if streaming or self.cohort_tokens + tokens > self.cohort_limit:
            return
        if not self.cohort:
            self.cohort_since = arrived
        elif arrived - self.cohort_since > COHORT_WINDOW:
            return
        self.cohort.add(active.request.id)
        self.cohort_tokens += tokens

    def _read_cohort(self, out: list[Message]) -> None:
        """Once no member of the cohort is reading its prompt, send what its members hold
        back and let them decode; at once where a request outside it streams already (a later
        short prompt read beside the cohort's), since the cohort's prompts now get only the
        budget beside decoding streams."""
        members = [self.active[i] for i in self.cohort if i in self.active]
        others_stream = any(
            not active.prompting and active.request.id not in self.cohort
            for active in self.active.values()
        )
        if any(member.prompting for member in members) and not others_stream:
            return
        now = time.monotonic()
        for member in members:
            if not member.prompting:
                # Its first token goes out now: the wait was part of reading the prompts.
                member.first_token_at = now
            out.extend(member.held)
            member.held = []
        self.cohort.clear()
        self.cohort_tokens = 0

    def _image_prompt(self, request: Completion) -> tuple[Any, list[Segment] | None]:
        """A prompt with images as mtmd's chunks and the segments they make, cut to the
        window (None when it does not fit and may not be cut)."""
        if self.projector is None:
            raise InvalidRequest(NO_VISION)
        try:
            images = [base64.b64decode(image, validate=True) for image in request.images]
        except ValueError as exc:
            raise InvalidRequest(f"invalid image input: {exc}") from exc
        chunks, segments = self.projector.tokenize(request.prompt, images, request.tokens)
        fitted: list[Segment] | None = segments
        if positions(segments) > self.n_ctx_seq:
            fitted = (
                cut_segments(segments, self.n_ctx_seq, request.sampling.num_keep)
                if request.truncate
                else None
            )
        return chunks, fitted

    def _shaping_chain(self, request: Completion) -> Any:
        """A chain of what is done to the logits before a token is picked: the format's grammar,
        then the penalties. The sampler goes on from it; the logprobs probe is just this."""
        L = self.L
        s = request.sampling
        # Checked and made before the chain, which a refused format would otherwise leak.
        text = format_grammar(request.format).encode() if request.format else b""
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if text:
            grammar = L.llama_sampler_init_grammar(self.vocab, text, b"root")
            if not grammar:
                L.llama_sampler_free(chain)
                raise FormatError(INVALID)
            L.llama_sampler_chain_add(chain, grammar)
        if s.repeat_last_n != 0 and (
            s.repeat_penalty != 1.0 or s.frequency_penalty or s.presence_penalty
        ):
            last_n = self.n_ctx_seq if s.repeat_last_n < 0 else s.repeat_last_n
            L.llama_sampler_chain_add(
                chain,
                L.llama_sampler_init_penalties(
                    self.n_vocab, last_n, s.repeat_penalty, s.frequency_penalty,
                    s.presence_penalty,
                ),
            )  # fmt: skip
        return chain

    def _make_sampler(self, request: Completion) -> Any:
        L = self.L
        s = request.sampling
        chain = self._shaping_chain(request)
        if s.temperature <= 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        if s.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(s.top_k))
        if 0 < s.typical_p < 1:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_typical(s.typical_p, 1))
        if 0 < s.top_p < 1:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(s.top_p, 1))
        if s.min_p > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(s.min_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(s.temperature))
        seed = s.seed if s.seed >= 0 else LLAMA_DEFAULT_SEED
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _token_logprobs(self, active: _Active, index: int, token: int) -> dict[str, Any]:
        """Log-softmax over the vocabulary at batch row `index`, after the grammar and penalties
        (as the sampler saw it): the picked token's entry, and its likeliest rivals."""
        L = self.L
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, index), (self.n_vocab,))
        data = np.empty(self.n_vocab, dtype=_TOKEN_DATA)
        data["id"] = np.arange(self.n_vocab, dtype=np.int32)
        data["logit"] = logits
        data["p"] = 0.0
        view = L.llama_token_data_array(
            data.ctypes.data_as(ctypes.POINTER(L.llama_token_data)), self.n_vocab, -1, False
        )
        L.llama_sampler_apply(active.probe, ctypes.byref(view))
        ids = data["id"][: view.size]
        values = data["logit"][: view.size].astype(np.float64)
        top = float(values.max())
        logprobs = values - (top + math.log(float(np.exp(values - top).sum())))
        where = np.flatnonzero(ids == token)
        entry = self._logprob_entry(token, float(logprobs[where[0]]) if where.size else -math.inf)
        k = active.request.top_logprobs
        if k > 0:
            k = min(k, len(ids))
            best = np.argpartition(-logprobs, k - 1)[:k]
            best = best[np.argsort(-logprobs[best], kind="stable")]
            entry["top_logprobs"] = [
                self._logprob_entry(int(ids[i]), float(logprobs[i]))
                for i in best
                if math.isfinite(logprobs[i])  # a grammar's excluded tokens are no rivals
            ]
        return entry

    def _logprob_entry(self, token: int, logprob: float) -> dict[str, Any]:
        # `bytes` are the token text's, as Ollama writes them (and its tests check): a token
        # that is part of a character reads as U+FFFD, and so do its bytes.
        text = self.piece(token).decode("utf-8", errors="replace")
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    def _finish(self, active: _Active, reason: str, out: list[Message]) -> None:
        out.extend(active.held)
        active.held = []
        tail = active.stream.flush()
        if tail or active.logprobs:
            out.append(Piece(active.request.id, tail, active.logprobs))
            active.logprobs = []
        now = time.monotonic()
        first = active.first_token_at or now
        out.append(
            Done(
                id=active.request.id,
                done_reason=reason,
                prompt_eval_count=active.prompt_count,
                prompt_eval_duration=int((first - active.started) * 1e9),
                eval_count=active.generated,
                eval_duration=int((now - first) * 1e9),
                prompt_cached=active.cached,
                prompt_images=active.image_tokens,
            )
        )
        del self.active[active.request.id]
        self._release(active)

    def _shift(self, active: _Active) -> None:
        """Drop the older half of the context after `num_keep`, as Ollama does when it is full."""
        slot = active.slot
        n_past = len(slot.tokens)
        keep = min(max(active.request.sampling.num_keep, 0), n_past - 1)
        discard = max(1, (n_past - keep) // 2)
        mem = self.L.llama_get_memory(self.ctx)
        self.L.llama_memory_seq_rm(mem, slot.seq, keep, keep + discard)
        self.L.llama_memory_seq_add(mem, slot.seq, keep + discard, n_past, -discard)
        del slot.tokens[keep : keep + discard]

    def _decode(self, out: list[Message]) -> None:
        L = self.L
        batch = self.batch
        n = 0
        # What each sequence puts in this step: (active, its tokens, whether to sample after).
        parts: list[tuple[_Active, list[int], bool]] = []
        self._read_cohort(out)
        # Sequences already generating go first: one token each keeps every stream moving.
        for active in list(self.active.values()):
            if active.next_token is None or active.request.id in self.cohort:
                continue
            slot = active.slot
            if len(slot.tokens) + 1 > self.n_ctx_seq:
                fill = active.request.sampling.num_predict == -2
                if (
                    not active.request.shift
                    or fill
                    or not L.llama_memory_can_shift(L.llama_get_memory(self.ctx))
                ):
                    self._finish(active, "length", out)
                    continue
                self._shift(active)
            parts.append((active, [active.next_token], True))
            active.next_token = None
            n += 1
        prompting = [active for active in self.active.values() if active.pending]
        takes = prompt_admission(
            [len(a.pending) for a in prompting], n, self.n_batch, self.decoding_prompt_chunk
        )
        for active, take in zip(prompting, takes, strict=True):
            if take:
                chunk, active.pending = active.pending[:take], active.pending[take:]
                active.next_run()
                parts.append((active, chunk, not active.prompting))
                n += take
        if n == 0:
            return
        sample_at: list[tuple[_Active, int]] = []
        where = batch_layout([(active.slot.seq, len(tokens)) for active, tokens, _ in parts])
        for (active, tokens, sample), indices in zip(parts, where, strict=True):
            slot = active.slot
            for token, index in zip(tokens, indices, strict=True):
                self._put(batch, index, token, len(slot.tokens), slot.seq, False)
                slot.tokens.append(token)
            if sample:
                batch.logits[indices[-1]] = True
                sample_at.append((active, indices[-1]))
        batch.n_tokens = n
        rc = L.llama_decode(self.ctx, batch)
        if rc != 0:
            for active, _ in sample_at:
                out.append(
                    RequestFailed(id=active.request.id, message=f"llama_decode failed ({rc})")
                )
                active.slot.tokens.clear()
                mem = L.llama_get_memory(self.ctx)
                L.llama_memory_seq_rm(mem, active.slot.seq, 0, -1)
                del self.active[active.request.id]
                self._release(active)
            return
        now = time.monotonic()
        for active, index in sample_at:
            self._sample(active, index, now, out)

    def _sample(self, active: _Active, index: int, now: float, out: list[Message]) -> None:
        """Pick the next token of `active` from the logits at batch row `index`, and send or
        finish what it makes."""
        L = self.L
        if active.greedy is not None:
            logits = L.llama_get_logits_ith(self.ctx, index)
            token = active.greedy.pick(np.ctypeslib.as_array(logits, (self.n_vocab,)))
        else:
            token = L.llama_sampler_sample(active.sampler, self.ctx, index)
        if not active.first_token_at:
            active.first_token_at = now
        if L.llama_vocab_is_eog(self.vocab, token):
            self._finish(active, "stop", out)
            return
        active.generated += 1
        piece = self.piece(token, special=token in active.preserved)
        if active.probe is not None:
            active.logprobs.append(self._token_logprobs(active, index, token))
            active.pieces.append(piece)
            L.llama_sampler_accept(active.probe, token)
        text, stopped = active.stream.push(piece)
        if stopped and active.probe is not None:
            # The tokens of the stop string were never shown: neither are their logprobs
            # (Ollama trims its pending logprobs to the pieces left after the cut).
            del active.logprobs[tokens_covering(active.pieces, len(text)) :]
        if text:
            sink = active.held if active.request.id in self.cohort else out
            sink.append(Piece(active.request.id, text, active.logprobs))
            active.logprobs = []
            active.pieces = []
        if stopped:
            self._finish(active, "stop", out)
            return
        limit = active.request.sampling.num_predict
        if limit < 0:
            limit = 10 * self.n_ctx_seq
        if active.generated >= limit:
            self._finish(active, "length", out)
            return
        active.next_token = token

    def _eval_image(self, out: list[Message]) -> None:
        """One image a step, into the sequence of the first request whose prompt has come to
        one: a batch of embeddings cannot share a step's batch of tokens, and an image at a
        time keeps the other sequences' streams moving between images."""
        for active in list(self.active.values()):
            image = active.later[0] if active.later and not active.pending else None
            if not isinstance(image, ImageChunk):
                continue
            assert self.projector is not None
            active.later.popleft()
            active.next_run()
            last = not active.prompting  # the prompt ends with it: sample from its logits
            slot = active.slot
            rc = self.projector.evaluate(
                self.ctx, image, len(slot.tokens), slot.seq, self.n_batch, last
            )
            if rc != 0:
                out.append(
                    RequestFailed(id=active.request.id, message=f"image evaluation failed ({rc})")
                )
                mem = self.L.llama_get_memory(self.ctx)
                self.L.llama_memory_seq_rm(mem, slot.seq, 0, -1)
                slot.tokens.clear()
                del self.active[active.request.id]
                self._release(active)
                return
            slot.tokens += cache_keys([image])
            if last:
                self._sample(active, -1, time.monotonic(), out)
            return

    @staticmethod
    def _put(batch: Any, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _embed_one(self, out: list[Message]) -> None:
        """One embedding per step, on a free slot, in a batch of its own."""
        free = [s for s in self.slots if not s.busy]
        if not free:
            return
        L = self.L
        request = self.embeds.popleft()
        slot = min(free, key=lambda s: len(s.tokens))
        limit = min(self.n_ctx_seq, self.n_batch)
        text = request.text
        if surely_longer(len(text), limit + MARGIN, self.max_token_bytes):
            text = text[: (limit + MARGIN) * self.max_token_bytes]  # only its start is kept
        tokens = self.tokenize(text, add_special=True)
        if len(tokens) > limit:
            if not request.truncate:
                out.append(RequestFailed(id=request.id, message=INPUT_TOO_LONG, invalid=True))
                return
            tokens = tokens[:limit]
        if not tokens:
            out.append(Embedding(id=request.id, embedding=[], prompt_eval_count=0))
            return
        mem = L.llama_get_memory(self.ctx)
        L.llama_memory_seq_rm(mem, slot.seq, 0, -1)
        slot.tokens.clear()
        for i, token in enumerate(tokens):
            self._put(self.batch, i, token, i, slot.seq, True)
        self.batch.n_tokens = len(tokens)
        L.llama_set_embeddings(self.ctx, True)
        try:
            rc = L.llama_decode(self.ctx, self.batch)
            if rc != 0:
                out.append(RequestFailed(id=request.id, message=f"llama_decode failed ({rc})"))
                return
            if L.llama_pooling_type(self.ctx) == L.LLAMA_POOLING_TYPE_NONE:
                ptr = L.llama_get_embeddings(self.ctx)
                rows = np.ctypeslib.as_array(ptr, shape=(len(tokens), self.n_embd))
                vector = rows.mean(axis=0, dtype=np.float64).tolist()
            else:
                ptr = L.llama_get_embeddings_seq(self.ctx, slot.seq)
                vector = [float(ptr[i]) for i in range(self.n_embd)]
        finally:
            L.llama_set_embeddings(self.ctx, False)
            L.llama_memory_seq_rm(mem, slot.seq, 0, -1)
        if not all(math.isfinite(v) for v in vector):
            out.append(RequestFailed(id=request.id, message="embedding is not finite"))
            return
        out.append(Embedding(id=request.id, embedding=vector, prompt_eval_count=len(tokens)))


def measuring_knob(env: Mapping[str, str], name: str, default: int, least: int, top: int) -> int:
    """`default`, or the variable `name` where it is a whole number from `least` to `top`
    (anything else is logged and ignored): the runner's settings that exist for measuring."""
    text = env.get(name, "").strip()
    if not text:
        return default
    if text.isdigit() and least <= int(text) <= top:
        return int(text)
    log.warning("ignoring %s=%r: not a whole number from %d to %d", name, text[:20], least, top)
    return default


def runs(seqs: Collection[int]) -> int:
    """How many runs of consecutive ids `seqs` has: the passes llama.cpp makes over a step."""
    return sum(1 for seq in seqs if seq - 1 not in seqs)


def prompt_admission(
    pending: Sequence[int],
    decoding: int,
    n_batch: int,
    beside_decoding: int = DECODING_PROMPT_CHUNK,
) -> list[int]:
    """How many of its `pending` prompt tokens each prompting sequence puts in a step that
    already decodes `decoding` tokens: `PROMPT_CHUNK` in all when nothing decodes, else
    `beside_decoding`, never more than the batch has room for; the shortest first, in arrival
    order among equals. A short prompt that arrives
    behind a long one is not made to wait for all of it: a 5-token request beside a window-long
    prompt of 1,024 tokens starts answering in the next step, not eight steps later (seconds
    here). The long one loses one step for each short one; it cannot be starved, since every
    prompt holds a slot, and there are `num_parallel` of them."""
    budget = min(PROMPT_CHUNK if decoding == 0 else beside_decoding, n_batch - decoding)
    takes = [0] * len(pending)
    for k in sorted(range(len(pending)), key=lambda k: pending[k]):
        takes[k] = max(0, min(pending[k], budget))
        budget -= takes[k]
    return takes


def _shared(cached: Sequence[int | str], tokens: Sequence[int | str]) -> int:
    """How much of `tokens` a cache holding `cached` can keep: their common start, stopped
    before an image that is not whole in it (an image is evaluated whole)."""
    common = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        common += 1
    while inside_image(tokens, common):
        common -= 1
    return common


def choose_slot(free: Sequence[tuple[int, int, float]], busy: Collection[int]) -> int:
    """Which free slot takes a new request: `free` holds (sequence id, tokens of prompt cache
    it shares with the request, when it was last used). The longest shared prompt wins, less
    `RUN_COST_TOKENS` for each run of busy sequences the slot would add (a slot that fills a
    gap gains as much); then the least recently used."""
    base = runs(busy)

    def score(k: int) -> tuple[int, float]:
        seq, common, last_used = free[k]
        extra = runs({*busy, seq}) - base
        return common - RUN_COST_TOKENS * extra, -last_used

    return max(range(len(free)), key=score)


def batch_layout(parts: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Where each part's tokens go in a step's batch, for parts of (sequence id, token count):
    the first token of every part in increasing sequence order, then the rest of each part.
    llama.cpp's split for per-sequence caches takes one token of each sequence into a pass
    while the ids ascend without a gap, so this order puts every decode and the head of every
    prompt into as few passes as the busy slots allow."""
    order = sorted(range(len(parts)), key=lambda k: parts[k][0])
    where: list[list[int]] = [[] for _ in parts]
    index = 0
    for k in order:
        where[k].append(index)
        index += 1
    for k in order:
        for _ in range(parts[k][1] - 1):
            where[k].append(index)
            index += 1
    return where


@attrs.define
class Greedy:
    """Greedy decoding with llama.cpp's penalties, done on the logits in NumPy: the same token
    as the chain `penalties → greedy` picks, for a fraction of its cost. The chain copies all
    the vocabulary's logits into candidates and looks each one up in its history (510 µs a
    token here, 153 without penalties); this touches only the tokens in the history (about
    30 µs). The history is what the chain's would be: the tokens this request generated."""

    last_n: int
    repeat: np.float32
    frequency: np.float32
    presence: np.float32
    history: deque[int] = attrs.field(factory=deque)

    @classmethod
    def of(cls, request: Completion, n_ctx_seq: int) -> Greedy | None:
        s = request.sampling
        if s.temperature > 0 or request.format:
            return None
        last_n = n_ctx_seq if s.repeat_last_n < 0 else s.repeat_last_n
        if not (s.repeat_penalty != 1.0 or s.frequency_penalty or s.presence_penalty):
            last_n = 0
        return cls(
            last_n,
            np.float32(s.repeat_penalty),
            np.float32(s.frequency_penalty),
            np.float32(s.presence_penalty),
        )

    def pick(self, logits: np.ndarray[Any, np.dtype[np.float32]]) -> int:
        if not self.history:
            token = int(np.argmax(logits))
        else:
            ids, counts = np.unique(np.fromiter(self.history, np.int32), return_counts=True)
            seen = logits[ids]
            # llama.cpp's order of operations, in float32: scale by the repeat penalty (up
            # for negative logits), then subtract count × frequency + presence.
            seen = np.where(seen <= 0, seen * self.repeat, seen / self.repeat)
            seen = seen - (counts.astype(np.float32) * self.frequency + self.presence)
            adjusted = logits.copy()
            adjusted[ids] = seen
            token = int(np.argmax(adjusted))
        if self.last_n > 0:
            self.history.append(token)
            if len(self.history) > self.last_n:
                self.history.popleft()
        return token


def tokens_covering(pieces: Sequence[bytes], chars: int) -> int:
    """How many of the tokens whose bytes are `pieces` it takes to make the first `chars`
    characters of their text: the tokens shown when a stop string cuts the text there."""
    if chars <= 0:
        return 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    made = 0
    for count, piece in enumerate(pieces, 1):
        made += len(decoder.decode(piece))
        if made >= chars:
            return count
    return len(pieces)
