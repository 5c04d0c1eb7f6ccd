"""GPU discovery through a fake pynvml, system memory, and the fake devices."""

from __future__ import annotations

import ctypes.util
import logging
import sys
import types
from pathlib import Path
from typing import Any

import pynvml
import pytest

from trio_ollama.gocompat.format import GiB, MiB
from trio_ollama.scheduler import devices
from trio_ollama.scheduler.devices import (
    CUDA_MINIMUM_MEMORY,
    FakeDevices,
    GPUInfo,
    NvmlDiscovery,
    SystemDevices,
    SystemMemory,
    discover_gpus,
    fake_gpu,
    parse_meminfo,
    read_system_memory,
    visible_devices,
)


class _Memory:
    def __init__(self, total: int, free: int) -> None:
        self.total = total
        self.free = free
        self.used = total - free


def fake_nvml(
    cards: list[dict[str, Any]],
    *,
    as_bytes: bool = True,
    fail: str | None = None,
) -> tuple[types.ModuleType, dict[str, int]]:
    """A module with pynvml's functions, serving `cards`; `fail` names a function that raises."""
    calls = {"init": 0, "shutdown": 0}
    module = types.ModuleType("pynvml")

    def text(value: str) -> str | bytes:
        return value.encode() if as_bytes else value

    def check(name: str) -> None:
        if fail == name:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    def init() -> None:
        check("nvmlInit")
        calls["init"] += 1

    def shutdown() -> None:
        calls["shutdown"] += 1

    def memory(handle: int) -> _Memory:
        check("nvmlDeviceGetMemoryInfo")
        return _Memory(cards[handle]["total"], cards[handle]["free"])

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    module.nvmlSystemGetDriverVersion = lambda: text("550.54.15")  # type: ignore[attr-defined]
    module.nvmlSystemGetCudaDriverVersion = lambda: 12040  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(cards)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: text(cards[h]["name"])  # type: ignore[attr-defined]
    module.nvmlDeviceGetUUID = lambda h: text(cards[h]["uuid"])  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    module.nvmlDeviceGetCudaComputeCapability = lambda h: cards[h]["cc"]  # type: ignore[attr-defined]
    return module, calls


CARDS = [
    {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-aaaa-1111", "total": 80 * GiB, "free": 79 * GiB,
     "cc": (9, 0)},
    {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-bbbb-2222", "total": 24 * GiB,
     "free": 20 * GiB, "cc": (8, 9)},
]  # fmt: skip


def test_discover_gpus_on_this_machine_does_not_raise() -> None:
    found = discover_gpus()
    assert isinstance(found, tuple)
    if ctypes.util.find_library("nvidia-ml") is None and not Path("/dev/nvidiactl").exists():
        assert found == ()
    assert all(isinstance(g, GPUInfo) for g in found)


def test_init_failure_means_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    called: list[bool] = []
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: called.append(True))
    assert discover_gpus() == ()
    assert called == []  # no shutdown without a successful init


def test_missing_module_means_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert discover_gpus() == ()


def test_reads_gpu_facts_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    module, calls = fake_nvml(CARDS, as_bytes=True)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    found = discover_gpus()

    assert calls == {"init": 1, "shutdown": 1}
    assert [g.name for g in found] == ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"]
    h100 = found[0]
    assert h100.index == 0
    assert h100.id == h100.uuid == "GPU-aaaa-1111"
    assert h100.library == "cuda"
    assert h100.total_memory == 80 * GiB
    assert h100.free_memory == 79 * GiB
    assert h100.compute_capability == (9, 0)
    assert h100.compute == "9.0"
    assert h100.driver_version == "550.54.15"
    assert h100.cuda_driver_version == (12, 4)
    assert h100.minimum_memory == CUDA_MINIMUM_MEMORY == 457 * MiB
    assert h100.discrete and not h100.integrated
    assert h100.supports_flash_attention
    assert found[1].compute_capability == (8, 9)


def test_names_as_str(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = fake_nvml(CARDS, as_bytes=False)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    found = discover_gpus()
    assert found[1].name == "NVIDIA GeForce RTX 4090"
    assert found[1].id == "GPU-bbbb-2222"


def test_error_after_init_still_shuts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    module, calls = fake_nvml(CARDS, fail="nvmlDeviceGetMemoryInfo")
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert discover_gpus() == ()
    assert calls == {"init": 1, "shutdown": 1}


def test_optional_driver_queries_may_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = fake_nvml(CARDS[:1])

    def broken() -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    module.nvmlSystemGetCudaDriverVersion = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    (gpu,) = discover_gpus(visible="0")
    assert gpu.cuda_driver_version is None
    assert gpu.driver_version == "550.54.15"


def test_too_old_gpus_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    old = {**CARDS[0], "uuid": "GPU-old", "cc": (3, 7)}
    module, _ = fake_nvml([old, CARDS[1]])
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [g.id for g in discover_gpus()] == ["GPU-bbbb-2222"]


def test_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = fake_nvml(CARDS)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [g.index for g in discover_gpus()] == [1]
    assert [g.index for g in discover_gpus(visible="GPU-bbbb,0")] == [1, 0]
    assert discover_gpus(visible="") == ()
    assert discover_gpus(visible="-1") == ()
    assert [g.index for g in discover_gpus(visible="0,7,1")] == [0]  # stops at a bad entry


def test_visible_devices_unset_keeps_all() -> None:
    gpus = (fake_gpu(0), fake_gpu(1))
    assert visible_devices(gpus, None) == gpus


def test_failure_is_logged_once(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    module, _ = fake_nvml(CARDS, fail="nvmlInit")
    monkeypatch.setitem(sys.modules, "pynvml", module)
    discovery = NvmlDiscovery()
    with caplog.at_level(logging.DEBUG, logger=devices.__name__):
        assert discovery.discover() == ()
        assert discovery.discover() == ()
        assert discovery.discover() == ()
    levels = [r.levelno for r in caplog.records if "CPU only" in r.getMessage()]
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG]


# --- system memory -------------------------------------------------------------------------------

MEMINFO = """\
MemTotal:       16318480 kB
MemFree:         1204000 kB
MemAvailable:    9876543 kB
Buffers:          200000 kB
Cached:          7000000 kB
SwapTotal:       2097148 kB
SwapFree:        2000000 kB
"""


def test_parse_meminfo() -> None:
    memory = parse_meminfo(MEMINFO)
    assert memory == SystemMemory(
        total=16318480 * 1024, free=9876543 * 1024, free_swap=2000000 * 1024
    )


def test_parse_meminfo_without_memavailable() -> None:
    text = "\n".join(line for line in MEMINFO.splitlines() if "Available" not in line)
    memory = parse_meminfo(text)
    assert memory is not None
    assert memory.free == (1204000 + 200000 + 7000000) * 1024


def test_read_system_memory_here() -> None:
    memory = read_system_memory()
    assert memory.total > 0
    assert 0 < memory.free <= memory.total
    assert memory.free_swap >= 0


def test_read_system_memory_falls_back_to_sysconf(tmp_path: Path) -> None:
    memory = read_system_memory(tmp_path / "missing")
    assert memory.total > 0
    assert 0 <= memory.free <= memory.total
    garbage = tmp_path / "meminfo"
    garbage.write_text("nothing useful\n")
    assert read_system_memory(garbage).total == memory.total


# --- value types and fakes -----------------------------------------------------------------------


def test_gpu_info_rules() -> None:
    assert fake_gpu(library="metal").minimum_memory == 512 * MiB
    assert fake_gpu(compute_capability=(6, 1)).supports_flash_attention
    assert not fake_gpu(compute_capability=(7, 2)).supports_flash_attention
    assert not fake_gpu(compute_capability=(5, 2)).supports_flash_attention
    with pytest.raises(ValueError):
        fake_gpu(free=-1)


def test_fake_devices() -> None:
    fake = FakeDevices([fake_gpu(0, total=10 * GiB), fake_gpu(1, total=10 * GiB)])
    fake.allocate(0, 4 * GiB)
    fake.set_free("GPU-fake-0001", 3 * GiB)
    assert [g.free_memory for g in fake.gpus()] == [6 * GiB, 3 * GiB]
    fake.release(0, 100 * GiB)  # never more than the total
    assert fake.gpus()[0].free_memory == 10 * GiB
    fake.allocate(1, 100 * GiB)  # never below zero
    assert fake.gpus()[1].free_memory == 0
    with pytest.raises(KeyError):
        fake.set_free(5, 0)
    fake.set_system_free(GiB, free_swap=2 * GiB)
    assert fake.system_memory().free == GiB and fake.system_memory().free_swap == 2 * GiB
    assert fake.calls == 3  # gpus() calls, for simulations that count discovery polls


def test_system_devices_satisfy_the_protocol() -> None:
    real: devices.Devices = SystemDevices()
    assert isinstance(real.gpus(), tuple)
    assert real.system_memory().total > 0
    fake: devices.Devices = FakeDevices()
    assert fake.gpus() == ()
