"""Whether the runner may load weights into llama.cpp's extra CPU buffer types (`use_extra_bufts`):
repacked copies laid out for this CPU's kernels (CPU_REPACK: Q4_0, Q4_K, IQ4_NL and Q8_0 on
AVX2/AVX-512 and ARM) and, where llama.cpp was built for it, AMX tiles.

CPU_REPACK picks its kernels from what the CPU reports at run time, so it is safe wherever the
build runs at all. AMX is not: llama.cpp asks the kernel for the tile state
(`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and a sandbox may grant it and still fault on the first tile
instruction (SIGILL, seen in this project's sandboxes, whose CPUs advertise AMX). So on a CPU
that advertises AMX the answer is probed once per runner, in a child process that loads the
model with the extra buffers and decodes a token: a child that dies of a signal says no.
`TRIO_OLLAMA_REPACK` (0 or 1) overrides the decision, for measuring it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_SECONDS = 120.0


def advertises_amx(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's flags name an AMX feature."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return any(flag.startswith("amx") for flag in line.split(":", 1)[-1].split())
    return False


def probe_command(model_path: str) -> list[str]:
    return [sys.executable, "-m", "trio_ollama.runner.repack", model_path]


def probe(command: Sequence[str], seconds: float = PROBE_SECONDS) -> bool:
    """Whether `command` (a child loading with the extra buffers) exits 0 in time."""
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=seconds, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("repack probe failed to run: %s", exc)
        return False
    if done.returncode != 0:
        log.warning(
            "repack probe exited %d: extra buffer types off (%s)",
            done.returncode,
            done.stderr.decode(errors="replace").strip()[-200:],
        )
    return done.returncode == 0


def use_extra_buffers(
    model_path: str,
    env: Mapping[str, str] = os.environ,
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    command: Sequence[str] | None = None,
) -> bool:
    """The decision described above, for the model at `model_path`."""
    forced = env.get("TRIO_OLLAMA_REPACK", "").strip().lower()
    if forced in ("0", "false", "off"):
        return False
    if forced in ("1", "true", "on"):
        return True
    try:
        cpuinfo = cpuinfo_path.read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    if not advertises_amx(cpuinfo):
        return True
    ok = probe(probe_command(model_path) if command is None else command)
    log.info("repack probe on an AMX CPU: extra buffer types %s", "on" if ok else "off")
    return ok


def _probe_main(model_path: str) -> None:
    """Load `model_path` with the extra buffer types and decode one token; a fault kills the
    process, which is the answer."""
    import llama_cpp as L

    quiet = L.llama_log_callback(lambda *args: None)  # kept: llama.cpp holds the pointer
    L.llama_log_set(quiet, None)
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.use_extra_bufts = True
    model = L.llama_model_load_from_file(model_path.encode(), mparams)
    if not model:
        raise SystemExit(f"failed to load {model_path}")
    cparams = L.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = 64
    ctx = L.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit(f"failed to make a context for {model_path}")
    vocab = L.llama_model_get_vocab(model)
    # A few tokens at once: a batch of several takes the matrix kernels AMX serves.
    tokens = (L.llama_token * 8)(*([max(0, L.llama_vocab_bos(vocab))] * 8))
    rc = L.llama_decode(ctx, L.llama_batch_get_one(tokens, 8))
    L.llama_free(ctx)
    L.llama_model_free(model)
    raise SystemExit(0 if rc == 0 else f"llama_decode returned {rc}")


if __name__ == "__main__":
    _probe_main(sys.argv[1])
