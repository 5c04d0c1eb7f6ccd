"""A Q4_0 copy of the default model, for measuring repacked weights (`benchmarks.serve --gguf`):
llama.cpp's CPU_REPACK has kernels for Q4_0 and none for the default model's Q4_1.

    .venv/bin/python -m benchmarks.q4_0 build/smollm2-135m-q4_0.gguf

Requantized from the Q4_1 weights with llama.cpp's own quantizer (as `llama-quantize
--allow-requantize` does), so the answers differ a little from the default model's; both
servers are given the same file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trio_ollama.store.default_model import fetch_default_gguf


def make_q4_0(out: Path) -> Path:
    import llama_cpp as L

    params = L.llama_model_quantize_default_params()
    params.ftype = L.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    rc = L.llama_model_quantize(str(fetch_default_gguf()).encode(), str(out).encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")
    return out


if __name__ == "__main__":
    print(make_q4_0(Path(sys.argv[1] if len(sys.argv) > 1 else "build/smollm2-135m-q4_0.gguf")))
