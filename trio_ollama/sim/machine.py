"""The simulated machine: memory, GPUs, the server's settings, and each model's costs."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_ollama.config import ConfigError, Settings
from trio_ollama.config_file import ConfigFile, ConfigFileError, Policies, config_from
from trio_ollama.gguf_info import GGUFError, GGUFInfo, read_gguf_info
from trio_ollama.scheduler.devices import LIBRARY_CUDA, LIBRARY_METAL
from trio_ollama.store import Store, StoreError


class MachineError(ValueError):
    """A machine file that cannot be simulated; the message names the key."""


@attrs.frozen
class ModelProfile:
    """What one model costs. Sizes in GiB; speeds per second of one sequence."""

    size_gib: float = 0.1
    load_seconds: float = 1.0
    tokens_per_second: float = 60.0
    prompt_per_second: float = 2000.0  # prompt bytes (about 4 a token) processed a second
    batch_slowdown: float = 0.1  # a step's extra time for each sequence beyond the first
    # Failures on demand: every load fails with this message; the runner crashes after this
    # many tokens in all (0: never), as a process that dies would.
    fail_load: str = ""
    crash_after_tokens: int = 0
    # Sizes from a real model instead of `size_gib`: a GGUF file (relative to the machine file),
    # or a stored model by name (the store at OLLAMA_MODELS); its header's tensors, layers and
    # context feed the scheduler's memory estimate. `info` holds the header once read.
    gguf: str = ""
    model: str = ""
    info: GGUFInfo | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class GPUProfile:
    """One simulated GPU: its memory (all free at the start), as discovery would report it."""

    vram_gib: float
    name: str = "Simulated GPU"
    library: str = LIBRARY_CUDA  # "cuda", "rocm" or "metal" (Ollama's minimum free differs)
    integrated: bool = False  # its memory is system RAM (no wait for VRAM after an unload)


@attrs.frozen
class Machine:
    memory_gib: float = 24.0  # system RAM, all free at the start
    cores: int = 2
    gpus: tuple[GPUProfile, ...] = ()  # the scheduler's estimate places layers on them
    # OLLAMA_* settings, as the server reads them (OLLAMA_NUM_PARALLEL, OLLAMA_KEEP_ALIVE...).
    env: Mapping[str, str] = attrs.field(factory=dict)
    models: Mapping[str, ModelProfile] = attrs.field(factory=dict)
    default: ModelProfile = ModelProfile()  # for a model the file does not list
    # Scale-out on paper: this many servers like this one, each with its own scheduler and
    # memory, behind a router that sends a request to a random one, or ("affinity") to one
    # that has its model loaded (else the one with the fewest models loaded).
    servers: int = 1
    routing: str = "random"
    # The server's configuration file (docs/policies.md), as a `[config]` table: its policies,
    # and its [server] settings, which [env] overrides as a variable does on a real server.
    config: ConfigFile = attrs.field(factory=lambda: ConfigFile(policies=Policies()))

    def profile(self, name: str) -> ModelProfile:
        return self.models.get(name, self.default)


_PROFILE_KEYS = set(attrs.fields_dict(ModelProfile)) - {"info"}


def load_machine(path: Path) -> Machine:
    """A machine from TOML: `memory_gib`, `cores`, `[[gpus]]` (`vram_gib`, `name`, `library`,
    `integrated`), `[env]`, `[default]`, `[models."name"]` tables of profile keys (`gguf` paths
    relative to the file), and `[config]`, the server's configuration file as a table."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MachineError(f"{path}: {exc}") from None
    try:
        return machine_from(data, base=path.parent)
    except MachineError as exc:
        raise MachineError(f"{path}: {exc}") from None


def machine_from(data: Mapping[str, Any], base: Path | None = None) -> Machine:
    """A machine from a TOML table; GGUF paths are taken relative to `base`, and every header
    a profile names is read now, so that a missing or broken file is refused here."""
    keys = {"memory_gib", "cores", "gpus", "env", "models", "default", "servers", "routing",
            "config"}  # fmt: skip
    unknown = sorted(set(data) - keys)
    if unknown:
        raise MachineError(f"{unknown[0]}: unknown key")
    env = data.get("env", {})
    if not isinstance(env, Mapping):
        raise MachineError("env: a table of OLLAMA_* settings")
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        raise MachineError("models: a table of model profiles")
    memory = data.get("memory_gib", 24.0)
    cores = data.get("cores", 2)
    if not _positive(memory):
        raise MachineError(f"memory_gib: {memory!r} is not a size")
    if not isinstance(cores, int) or cores < 1:
        raise MachineError(f"cores: {cores!r} is not a count")
    servers = data.get("servers", 1)
    if not isinstance(servers, int) or servers < 1:
        raise MachineError(f"servers: {servers!r} is not a count")
    routing = data.get("routing", "random")
    if routing not in ("random", "affinity"):
        raise MachineError(f"routing: {routing!r} is not random or affinity")
    try:
        config = config_from(data.get("config", {}))
    except ConfigFileError as exc:
        raise MachineError(f"config.{exc}") from None
    gpus = data.get("gpus", [])
    if not isinstance(gpus, list):
        raise MachineError("gpus: an array of tables ([[gpus]])")
    machine = Machine(
        memory_gib=float(memory),
        cores=cores,
        gpus=tuple(_gpu(value, f"gpus[{i}]") for i, value in enumerate(gpus)),
        env={str(k): str(v) for k, v in env.items()},
        config=config,
        models={name: _profile(value, f"models.{name}") for name, value in models.items()},
        default=_profile(data.get("default", {}), "default"),
        servers=servers,
        routing=routing,
    )
    return with_headers(machine, base)


def with_headers(machine: Machine, base: Path | None = None) -> Machine:
    """`machine` with the header of each GGUF file or stored model its profiles name read into
    the profile (`info`); `MachineError` naming the profile if one cannot be read."""
    models_dir: Path | None = None

    def read(profile: ModelProfile, where: str) -> ModelProfile:
        nonlocal models_dir
        if profile.info is not None or not (profile.gguf or profile.model):
            return profile
        try:
            if profile.gguf:
                path = Path(profile.gguf).expanduser()
                if base is not None and not path.is_absolute():
                    path = base / path
                return attrs.evolve(profile, info=read_gguf_info(path))
            if models_dir is None:
                models_dir = _models_dir(machine.env)
            details = Store(models_dir).show(profile.model)
            if details.gguf is None:
                raise StoreError(f"{profile.model} has no model weights")
            return attrs.evolve(profile, info=details.gguf)
        except (GGUFError, StoreError, ConfigError, OSError) as exc:
            key = "gguf" if profile.gguf else "model"
            raise MachineError(f"{where}.{key}: {exc}") from None

    models = {name: read(p, f"models.{name}") for name, p in machine.models.items()}
    return attrs.evolve(machine, models=models, default=read(machine.default, "default"))


def _models_dir(env: Mapping[str, str]) -> Path:
    """The store a stored model is looked up in: OLLAMA_MODELS from the machine's [env], else
    the process's, else the default, as the server would find it."""
    wanted = ("OLLAMA_MODELS", "HOME")
    merged = {k: v for k, v in os.environ.items() if k in wanted}
    merged.update({k: v for k, v in env.items() if k in wanted})
    return Settings.from_env(merged).models_dir


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _gpu(value: Any, where: str) -> GPUProfile:
    if not isinstance(value, Mapping):
        raise MachineError(f"{where}: a table")
    unknown = sorted(set(value) - set(attrs.fields_dict(GPUProfile)))
    if unknown:
        raise MachineError(f"{where}.{unknown[0]}: unknown key")
    vram: Any = value.get("vram_gib")
    if not _positive(vram):
        raise MachineError(f"{where}.vram_gib: {vram!r} is not a size")
    name = value.get("name", "Simulated GPU")
    if not isinstance(name, str):
        raise MachineError(f"{where}.name: {name!r} is not a name")
    library = value.get("library", LIBRARY_CUDA)
    if library not in _GPU_LIBRARIES:
        raise MachineError(
            f"{where}.library: {library!r} is not one of {', '.join(_GPU_LIBRARIES)}"
        )
    integrated = value.get("integrated", False)
    if not isinstance(integrated, bool):
        raise MachineError(f"{where}.integrated: {integrated!r} is not true or false")
    return GPUProfile(float(vram), name, library, integrated)


_GPU_LIBRARIES = (LIBRARY_CUDA, "rocm", LIBRARY_METAL)


def _profile(value: Any, where: str) -> ModelProfile:
    if not isinstance(value, Mapping):
        raise MachineError(f"{where}: a table")
    unknown = sorted(set(value) - _PROFILE_KEYS)
    if unknown:
        raise MachineError(f"{where}.{unknown[0]}: unknown key")
    fields: dict[str, Any] = {}
    for key, item in value.items():
        if key == "fail_load":
            if not isinstance(item, str):
                raise MachineError(f"{where}.fail_load: {item!r} is not a message")
            fields[key] = item
        elif key in ("gguf", "model"):
            if not isinstance(item, str) or not item:
                raise MachineError(f"{where}.{key}: {item!r} is not a {_NAMES[key]}")
            fields[key] = item
        elif key == "crash_after_tokens":
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise MachineError(f"{where}.crash_after_tokens: {item!r} is not a count")
            fields[key] = item
        elif _positive(item) or (key == "batch_slowdown" and item == 0):
            fields[key] = float(item)
        else:
            raise MachineError(f"{where}.{key}: {item!r} is not a positive number")
    named = [key for key in ("gguf", "model", "size_gib") if key in fields]
    if len(named) > 1:
        raise MachineError(f"{where}: {' and '.join(named)} both give the size: one of them")
    return ModelProfile(**fields)


_NAMES = {"gguf": "path", "model": "model name"}
