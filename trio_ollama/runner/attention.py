"""Whether flash attention decodes faster on this CPU, measured once per model and machine.

Ollama turns flash attention on only when asked (`OLLAMA_FLASH_ATTENTION`); llama-server's
default ("auto") turns it on wherever the backend has it. On a CPU neither is right everywhere:
on one 2-core machine it slowed decoding (0.80-0.90x), on another it sped it up (a decode step
of 8 streams 33.2 -> 26.2 ms; throughput against llama-server 0.77-0.93 -> 0.92-1.17,
docs/performance.md). So where OLLAMA_FLASH_ATTENTION is not set and no layer is on a GPU, the
runner times a decode step of a few streams each way, on the model it loaded, and keeps the
answer in a file (about a second for SmolLM2-135M on 2 cores, paid at the first load of a model
on a machine). Off wins ties: it is Ollama's default, and a small gain is noise. The timed
steps stop at PROBE_SECONDS (a large model, or a machine too busy to measure on) after one step
each way at least, and what they have by then decides; the two contexts' prompts (DEPTH tokens
each) come before that and are not bounded by it. Where either context cannot be made or run,
it is off and nothing is kept. To measure again, delete the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trio_ollama.config import cache_dir

log = logging.getLogger(__name__)

STREAMS = 4
DEPTH = 96  # cells each stream holds when the steps are timed
STEPS = 8  # timed steps a round (the first round after two that warm up)
ROUNDS = 3  # each way, alternating, so that a burst of other work falls on both
# Flash attention must be this much faster to be chosen.
MARGIN = 0.95
PROBE_SECONDS = 3.0


def cache_file(env: Mapping[str, str] = os.environ) -> Path:
    return cache_dir(env) / "flash-attention.json"


def machine_key(model_path: str, n_threads: int, llama_version: str) -> str:
    """What the answer depends on: the weights (a store blob is named by its digest), the
    threads, the CPU and llama.cpp's kernels."""
    path = Path(model_path)
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    return f"{path.name}:{size}:{n_threads}:{cpu_name()}:{llama_version}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def remembered(path: Path, key: str) -> bool | None:
    try:
        found = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, bool) else None


def remember(path: Path, key: str, faster: bool) -> None:
    """Add the answer to the file, replaced whole (another runner may be writing it too: the
    later write wins, and the loser's answer is measured again next time)."""
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known[key] = faster
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".flash-attention-")
    except OSError as exc:
        log.warning("could not keep the flash attention answer in %s: %s", path, exc)
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not keep the flash attention answer in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def flash_attention_faster(L: Any, model: Any, model_path: str, n_threads: int) -> bool:
    """The answer for this model on this machine: from the file, or measured and kept."""
    path = cache_file()
    key = machine_key(model_path, n_threads, getattr(L, "__version__", "?"))
    found = remembered(path, key)
    if found is not None:
        log.info("flash attention %s: measured before on this machine (%s)",
                 "on" if found else "off", path)  # fmt: skip
        return found
    off, on = step_seconds(L, model, n_threads)
    if not (math.isfinite(off) and math.isfinite(on)):
        log.warning("flash attention off: it could not be measured (%s, %s)", off, on)
        return False
    faster = on < MARGIN * off
    log.info(
        "flash attention %s on this CPU: a decode step of %d streams %.1f ms with, %.1f without",
        "on" if faster else "off", STREAMS, on * 1e3, off * 1e3,
    )  # fmt: skip
    remember(path, key, faster)
    return faster


def step_seconds(
    L: Any, model: Any, n_threads: int, seconds: float = PROBE_SECONDS
) -> tuple[float, float]:
    """Median seconds of a decode step of STREAMS streams DEPTH cells deep, without and with
    flash attention, in alternating rounds until `seconds` have passed, one step each way at
    least (inf where a context cannot be made or a decode fails)."""
    contexts: list[_Timed] = []
    try:
        for flash in (False, True):
            contexts.append(_Timed(L, model, n_threads, flash))
        deadline = time.perf_counter() + seconds
        times: list[list[float]] = [[], []]
        for round_ in range(ROUNDS):
            if round_ and time.perf_counter() > deadline:
                break
            for k, timed in enumerate(contexts):
                times[k] += timed.steps(STEPS, deadline)
        off, on = (statistics.median(t) if t else math.inf for t in times)
        return off, on
    finally:
        for timed in contexts:
            timed.close()


class _Timed:
    """A small context of its own: one stream's prompt computed, copied to the others."""

    def __init__(self, L: Any, model: Any, n_threads: int, flash: bool) -> None:
        self.L = L
        cparams = L.llama_context_default_params()
        cparams.n_ctx = STREAMS * (DEPTH + ROUNDS * STEPS + 2 + 8)
        cparams.n_seq_max = STREAMS
        cparams.kv_unified = False  # the runner's layout
        cparams.n_batch = cparams.n_ubatch = DEPTH
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.flash_attn_type = (
            L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.no_perf = True
        self.ctx = L.llama_init_from_model(model, cparams)
        self.batch = L.llama_batch_init(DEPTH, 0, STREAMS)
        n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        self.tokens = [(17 + 31 * i) % n_vocab for i in range(DEPTH + 64)]
        self.pos = 0
        self.ok = bool(self.ctx) and self._decode([(t, i, 0) for i, t in enumerate(
            self.tokens[:DEPTH])])  # fmt: skip
        if self.ok:
            self.pos = DEPTH
            mem = L.llama_get_memory(self.ctx)
            for seq in range(1, STREAMS):
                L.llama_memory_seq_cp(mem, 0, seq, -1, -1)

    def _decode(self, cells: list[tuple[int, int, int]]) -> bool:
        batch = self.batch
        for i, (token, pos, seq) in enumerate(cells):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = i == len(cells) - 1 or pos >= DEPTH
        batch.n_tokens = len(cells)
        return bool(self.L.llama_decode(self.ctx, batch) == 0)

    def steps(self, n: int, deadline: float) -> list[float]:
        """Seconds of each of `n` steps of one token a stream (after two that warm up, the
        first time), fewer once `deadline` has passed: one at least."""
        times: list[float] = []
        while self.ok and len(times) < n:
            if times and time.perf_counter() > deadline:
                break
            token = self.tokens[self.pos % len(self.tokens)]
            start = time.perf_counter()
            self.ok = self._decode([(token, self.pos, seq) for seq in range(STREAMS)])
            seconds = time.perf_counter() - start
            self.pos += 1
            if self.ok and self.pos > DEPTH + 2:
                times.append(seconds)
        return times

    def close(self) -> None:
        self.L.llama_batch_free(self.batch)
        if self.ctx:
            self.L.llama_free(self.ctx)
