"""What the fleet's tests and benchmarks share: a store of distinct models made from the default
one, and the fleet's servers as processes on this machine, each read through its own `/api/ps`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import httpx

from tests.ggufs import variant_of
from tests.procs import alive, children, command_lines
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model
from trio_ollama.store.modelfile import parse_modelfile, to_create_request

DEFAULT = "smollm2:135m"


def store_with_models(root: Path, count: int) -> tuple[Store, list[str]]:
    """A store holding the default model and `count - 1` others with the same weights but
    their own bytes (so each loads a runner of its own): `smollm2:135m`, `m1:latest`..."""
    store = Store(root / "models")
    ensure_default_model(store)
    names = [DEFAULT]
    weights = store.show(DEFAULT).model_path
    assert weights is not None
    for i in range(1, count):
        name = f"m{i}:latest"
        if name not in {m.name.display_shortest for m in store.list()}:
            variant = variant_of(weights, root / f"m{i}.gguf", salt=i.to_bytes(4, "little"))
            request = to_create_request(
                parse_modelfile(f"FROM {variant}"), relative_to=root, hash_file=store.import_file
            )
            store.create(name, request, progress=lambda _: None)
            variant.unlink()
        names.append(name)
    return store, names


@attrs.frozen
class FleetServer:
    """One replica's trio-ollama server, found among this machine's processes."""

    pid: int
    url: str

    def ps(self) -> dict[str, dict[str, Any]]:
        """Its own `/api/ps`, by model name."""
        answer = httpx.get(self.url + "/api/ps", timeout=10).json()
        return {m["name"]: m for m in answer["models"]}

    def runners(self) -> list[int]:
        return children(self.pid)

    def replica_pid(self) -> int:
        """The Ray replica process that owns it (its parent)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[1])


def fleet_servers(models: Path) -> list[FleetServer]:
    """The running `trio-ollama serve` processes whose store is `models` (the fleet's)."""
    found = []
    for pid, command in command_lines().items():
        if b"trio_ollama" not in command or b"serve" not in command:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        env = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        if env.get(b"OLLAMA_MODELS") == os.fsencode(models) and alive(pid):
            found.append(FleetServer(pid, "http://" + env[b"OLLAMA_HOST"].decode()))
    return sorted(found, key=lambda s: s.pid)
