"""What the machine has to offer: NVIDIA GPUs (through NVML) and system memory.

Every function here blocks (NVML calls, reading `/proc/meminfo`); a Trio caller runs them in
`trio.to_thread.run_sync`. Nothing here raises because a GPU is missing: no `pynvml`, no driver,
or any NVML error means CPU only, which is the normal state of most machines that run this.

`Devices` is the seam the scheduler and the simulation use: `SystemDevices` asks the hardware,
`FakeDevices` is a mutable stand-in whose free memory a test moves by hand.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from trio_ollama.gocompat.format import GiB, MiB

log = logging.getLogger(__name__)


LIBRARY_CUDA = "cuda"
LIBRARY_METAL = "metal"

# Ollama sets this much aside on every GPU for the backend's own context before placing any layer
# (`ml.DeviceInfo.MinimumMemory`: 457 MiB for CUDA and ROCm, 512 MiB on Metal).
CUDA_MINIMUM_MEMORY = 457 * MiB
METAL_MINIMUM_MEMORY = 512 * MiB

# Ollama's CUDA builds refuse GPUs older than compute capability 5.0 (`CudaComputeMajorMin`).
CUDA_MIN_COMPUTE = (5, 0)

_T = TypeVar("_T")


def minimum_memory_for(library: str) -> int:
    return METAL_MINIMUM_MEMORY if library.lower() == LIBRARY_METAL else CUDA_MINIMUM_MEMORY


def _default_minimum_memory(self: GPUInfo) -> int:
    return minimum_memory_for(self.library)


@attrs.frozen(kw_only=True)
class GPUInfo:
    """One GPU as the memory estimate and the scheduler see it. Sizes are bytes."""

    index: int
    # NVML's UUID (`GPU-…`): stable across processes, and what CUDA_VISIBLE_DEVICES accepts.
    id: str
    name: str
    total_memory: int = attrs.field(validator=attrs.validators.ge(0))
    free_memory: int = attrs.field(validator=attrs.validators.ge(0))
    library: str = LIBRARY_CUDA
    compute_capability: tuple[int, int] = (0, 0)
    integrated: bool = False
    # The kernel driver's version string (`550.54.15`) and the CUDA version it supports (12, 4).
    driver_version: str | None = None
    cuda_driver_version: tuple[int, int] | None = None
    minimum_memory: int = attrs.field(
        default=attrs.Factory(_default_minimum_memory, takes_self=True),
        validator=attrs.validators.ge(0),
    )

    @property
    def uuid(self) -> str:
        return self.id

    @property
    def discrete(self) -> bool:
        return not self.integrated

    @property
    def compute(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    @property
    def supports_flash_attention(self) -> bool:
        """Ollama's rule for CUDA: Pascal (6.x) or newer, except Jetson Xavier (7.2)."""
        library = self.library.lower()
        if library != LIBRARY_CUDA:
            return library in (LIBRARY_METAL, "rocm", "vulkan", "cpu")
        major, minor = self.compute_capability
        return major >= 6 and (major, minor) != (7, 2)

    def with_free(self, free_memory: int) -> GPUInfo:
        return attrs.evolve(self, free_memory=max(0, free_memory))


@attrs.frozen(kw_only=True)
class SystemMemory:
    """System RAM in bytes. `free` is what the kernel could hand out now (MemAvailable)."""

    total: int = attrs.field(validator=attrs.validators.ge(0))
    free: int = attrs.field(validator=attrs.validators.ge(0))
    free_swap: int = attrs.field(default=0, validator=attrs.validators.ge(0))


class Devices(Protocol):
    """Where the scheduler learns about GPUs and RAM. Both methods block: call them in a thread."""

    def gpus(self) -> tuple[GPUInfo, ...]: ...

    def system_memory(self) -> SystemMemory: ...


# --- system memory -----------------------------------------------------------------------------


def parse_meminfo(text: str) -> SystemMemory | None:
    """`/proc/meminfo` → SystemMemory; None when it lacks MemTotal."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        unit = parts[1].lower() if len(parts) > 1 else ""
        fields[key.strip()] = value * 1024 if unit == "kb" else value
    total = fields.get("MemTotal")
    if total is None:
        return None
    free = fields.get("MemAvailable")
    if free is None:
        # Kernels before 3.14 lack MemAvailable; page cache and buffers are reclaimable.
        free = fields.get("MemFree", 0) + fields.get("Buffers", 0) + fields.get("Cached", 0)
    return SystemMemory(total=total, free=min(free, total), free_swap=fields.get("SwapFree", 0))


def _sysconf(name: str) -> int | None:
    try:
        value = os.sysconf(name)
    except (ValueError, OSError, AttributeError):
        return None
    return value if value >= 0 else None


def _sysconf_memory() -> SystemMemory:
    page = _sysconf("SC_PAGE_SIZE") or 4096
    pages = _sysconf("SC_PHYS_PAGES")
    if pages is None:
        log.warning("cannot read the system memory size; assuming none is free")
        return SystemMemory(total=0, free=0, free_swap=0)
    total = pages * page
    available = _sysconf("SC_AVPHYS_PAGES")
    # Without a free-page count, refusing every load would be worse than trusting the total:
    # the runner's own allocation is the final word anyway.
    free = total if available is None else min(available * page, total)
    return SystemMemory(total=total, free=free, free_swap=0)


def read_system_memory(meminfo: Path = Path("/proc/meminfo")) -> SystemMemory:
    """Total, available and free swap from /proc/meminfo, else from `os.sysconf`. Blocks briefly."""
    try:
        parsed = parse_meminfo(meminfo.read_text(encoding="ascii", errors="replace"))
    except OSError:
        parsed = None
    return parsed if parsed is not None else _sysconf_memory()


# --- NVIDIA GPUs through NVML ------------------------------------------------------------------


def _text(value: object) -> str:
    # pynvml returns bytes or str depending on its version and on `convertStrBytes`.
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace").strip("\x00").strip()
    return str(value).strip()


def _optional(call: Callable[[], _T]) -> _T | None:
    try:
        return call()
    except Exception as exc:
        log.debug("optional NVML query failed: %s", exc)
        return None


def _cuda_version(raw: object) -> tuple[int, int] | None:
    # NVML encodes CUDA 12.4 as 12040.
    if not isinstance(raw, int) or raw <= 0:
        return None
    return raw // 1000, (raw % 1000) // 10


def visible_devices(gpus: Sequence[GPUInfo], spec: str | None) -> tuple[GPUInfo, ...]:
    """The GPUs that CUDA_VISIBLE_DEVICES lets a CUDA program see, in the order it lists them.

    NVML ignores the variable but the runner's CUDA runtime obeys it, so a GPU it hides must not
    count. As in CUDA: entries are indices or UUID prefixes; the list ends at the first entry that
    names no device; set but empty hides every GPU. Indices are NVML's (PCI bus order), which
    match CUDA's only under CUDA_DEVICE_ORDER=PCI_BUS_ID; UUIDs are unambiguous.
    """
    if spec is None:
        return tuple(gpus)
    chosen: list[GPUInfo] = []
    for raw in spec.split(","):
        entry = raw.strip()
        match: GPUInfo | None = None
        if entry.isdigit():
            match = next((g for g in gpus if g.index == int(entry)), None)
        elif entry.upper().startswith("GPU-"):
            candidates = [g for g in gpus if g.id.upper().startswith(entry.upper())]
            match = candidates[0] if len(candidates) == 1 else None
        if match is None:
            break
        if match not in chosen:
            chosen.append(match)
    return tuple(chosen)


class NvmlDiscovery:
    """Reads GPUs through `pynvml`, and says once (not on every poll) why there are none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._explained = False
        self._ignored: set[str] = set()

    def _say_once(self, level: int, message: str, *args: object) -> None:
        with self._lock:
            first = not self._explained
            self._explained = True
        log.log(level if first else logging.DEBUG, message, *args)

    def discover(self, visible: str | None = None) -> tuple[GPUInfo, ...]:
        """All usable NVIDIA GPUs, or `()` for CPU only. Never raises; blocks (call in a thread).

        `visible` is CUDA_VISIBLE_DEVICES; by default it is read from the environment.
        """
        if visible is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            nvml: Any = importlib.import_module("pynvml")
        except Exception as exc:
            self._say_once(logging.INFO, "no GPU support (pynvml unavailable: %s); CPU only", exc)
            return ()
        try:
            nvml.nvmlInit()
        except Exception as exc:
            # The usual case on a machine without an NVIDIA driver: NVMLError_LibraryNotFound.
            self._say_once(logging.INFO, "no NVIDIA GPU found (%s); CPU only", exc)
            return ()
        try:
            gpus = self._read_all(nvml)
        except Exception as exc:
            self._say_once(logging.WARNING, "NVIDIA GPU discovery failed (%s); CPU only", exc)
            return ()
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception as exc:
                log.debug("nvmlShutdown failed: %s", exc)
        usable = tuple(g for g in visible_devices(gpus, visible) if self._usable(g))
        if not usable:
            self._say_once(logging.INFO, "no usable NVIDIA GPU; CPU only")
        return usable

    def _usable(self, gpu: GPUInfo) -> bool:
        if gpu.compute_capability < CUDA_MIN_COMPUTE:
            with self._lock:
                first = gpu.id not in self._ignored
                self._ignored.add(gpu.id)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "GPU %d (%s) has compute capability %s, older than the supported %d.%d; ignored",
                gpu.index,
                gpu.name,
                gpu.compute,
                *CUDA_MIN_COMPUTE,
            )
            return False
        return True

    @staticmethod
    def _read_all(nvml: Any) -> list[GPUInfo]:
        driver = _optional(nvml.nvmlSystemGetDriverVersion)
        cuda = _optional(nvml.nvmlSystemGetCudaDriverVersion)
        gpus = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                GPUInfo(
                    index=index,
                    id=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    library=LIBRARY_CUDA,
                    total_memory=int(memory.total),
                    free_memory=min(int(memory.free), int(memory.total)),
                    compute_capability=(int(major), int(minor)),
                    # NVML has no "integrated" flag; the GPUs it reports have their own memory.
                    integrated=False,
                    driver_version=None if driver is None else _text(driver),
                    cuda_driver_version=_cuda_version(cuda),
                )
            )
        return gpus


_DISCOVERY = NvmlDiscovery()


def discover_gpus(visible: str | None = None) -> tuple[GPUInfo, ...]:
    """NVIDIA GPUs through NVML, `()` when there are none or NVML fails in any way.

    Blocking: from Trio, `await trio.to_thread.run_sync(discover_gpus)`. The reason for finding
    no GPU is logged once per process, not on every call.
    """
    return _DISCOVERY.discover(visible)


@attrs.define
class SystemDevices:
    """The real machine: NVML for GPUs, /proc/meminfo for RAM. Both methods block."""

    discovery: NvmlDiscovery = attrs.Factory(NvmlDiscovery)
    meminfo: Path = Path("/proc/meminfo")

    def gpus(self) -> tuple[GPUInfo, ...]:
        return self.discovery.discover()

    def system_memory(self) -> SystemMemory:
        return read_system_memory(self.meminfo)


def fake_gpu(
    index: int = 0,
    *,
    total: int = 24 * GiB,
    free: int | None = None,
    name: str = "Fake GPU",
    library: str = LIBRARY_CUDA,
    compute_capability: tuple[int, int] = (8, 9),
    integrated: bool = False,
) -> GPUInfo:
    """A plausible GPUInfo for tests and simulations."""
    return GPUInfo(
        index=index,
        id=f"GPU-fake-{index:04d}",
        name=name,
        library=library,
        total_memory=total,
        free_memory=total if free is None else free,
        compute_capability=compute_capability,
        integrated=integrated,
    )


@attrs.define
class FakeDevices:
    """Devices whose free memory a test or a simulation changes by hand."""

    gpu_list: list[GPUInfo] = attrs.Factory(list)
    system: SystemMemory = attrs.Factory(
        lambda: SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0)
    )
    calls: int = 0
    # Answers at once: the scheduler calls it inline rather than in a worker thread.
    blocking: bool = False

    def gpus(self) -> tuple[GPUInfo, ...]:
        self.calls += 1
        return tuple(self.gpu_list)

    def system_memory(self) -> SystemMemory:
        return self.system

    def _position(self, gpu: int | str) -> int:
        for position, info in enumerate(self.gpu_list):
            if gpu in (info.index, info.id):
                return position
        raise KeyError(gpu)

    def set_free(self, gpu: int | str, free: int) -> None:
        """Set a GPU's free memory; `gpu` is its index or id."""
        position = self._position(gpu)
        info = self.gpu_list[position]
        self.gpu_list[position] = info.with_free(min(free, info.total_memory))

    def allocate(self, gpu: int | str, nbytes: int) -> None:
        """A runner took `nbytes` on this GPU."""
        self.set_free(gpu, self.gpu_list[self._position(gpu)].free_memory - nbytes)

    def release(self, gpu: int | str, nbytes: int) -> None:
        self.set_free(gpu, self.gpu_list[self._position(gpu)].free_memory + nbytes)

    def set_system_free(self, free: int, free_swap: int | None = None) -> None:
        self.system = attrs.evolve(
            self.system,
            free=min(max(0, free), self.system.total),
            free_swap=self.system.free_swap if free_swap is None else free_swap,
        )
