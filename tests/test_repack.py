"""The runner's choice of llama.cpp's extra buffer types (repacked weights), made per machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trio_ollama.runner.repack import advertises_amx, probe, probe_command, use_extra_buffers

AMX_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n"
PLAIN_CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
DIES_OF_SIGILL = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
SUCCEEDS = [sys.executable, "-c", "pass"]


def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_amx_is_read_from_the_flags() -> None:
    assert advertises_amx(AMX_CPU)
    assert not advertises_amx(PLAIN_CPU)
    assert not advertises_amx("")
    # A word that merely contains "amx" elsewhere is not a flag.
    assert not advertises_amx("model name\t: Examx CPU\nflags\t\t: sse2\n")


def test_a_cpu_without_amx_repacks_without_a_probe(tmp_path: Path) -> None:
    # The probe would fail; it is not run, since CPU_REPACK's kernels follow the CPU.
    assert use_extra_buffers("m.gguf", {}, cpuinfo(tmp_path, PLAIN_CPU), DIES_OF_SIGILL)


def test_an_amx_cpu_repacks_only_where_the_probe_survives(tmp_path: Path) -> None:
    amx = cpuinfo(tmp_path, AMX_CPU)
    assert use_extra_buffers("m.gguf", {}, amx, SUCCEEDS)
    assert not use_extra_buffers("m.gguf", {}, amx, DIES_OF_SIGILL)
    # A probe that cannot start, or hangs, says no too.
    assert not use_extra_buffers("m.gguf", {}, amx, ["/nonexistent/python"])
    assert not probe([sys.executable, "-c", "import time; time.sleep(30)"], seconds=0.5)


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("1", True)])
def test_the_environment_overrides_the_decision(tmp_path: Path, value: str, expected: bool) -> None:
    for cpu, command in ((PLAIN_CPU, SUCCEEDS), (AMX_CPU, DIES_OF_SIGILL)):
        env = {"TRIO_OLLAMA_REPACK": value}
        assert use_extra_buffers("m.gguf", env, cpuinfo(tmp_path, cpu), command) is expected


def test_the_real_probe_loads_the_model_with_extra_buffers(default_gguf: Path) -> None:
    # On this machine the probe must pass: it is what an AMX machine would run.
    assert probe(probe_command(str(default_gguf)))
    # And fails, with no fault, on a file that is not a model.
    assert not probe(probe_command(__file__))
