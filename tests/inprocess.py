"""The server in this process, over fake engines (no subprocess, no model weights): the real
Quart app, service, scheduler and store on a tiny GGUF. Two ways in:

- `open_server`: the app alone, driven through Quart's test client or raw ASGI (`post`,
  `http_scope`); the `server` fixture of `tests/conftest.py` is one of these.
- `open_served`: the whole `serve` on a loopback port, for real HTTP clients and the shutdown.

A test slows down, breaks or scripts the engines by setting `Engines.config` before the model
loads (`server.engines.config = FakeConfig(crash_after_tokens=3)`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from quart_trio import QuartTrio

from tests.ggufs import write_tiny_gguf
from trio_ollama.api.app import create_app
from trio_ollama.api.server import serve
from trio_ollama.api.service import Service
from trio_ollama.config import Settings
from trio_ollama.gocompat.format import GiB
from trio_ollama.runner.fake import FakeConfig, FakeEngine
from trio_ollama.runner.protocol import Load
from trio_ollama.scheduler import ModelSpec, Scheduler, open_scheduler
from trio_ollama.scheduler.core import Startable
from trio_ollama.scheduler.devices import FakeDevices, SystemMemory
from trio_ollama.store import CreateRequest, Store
from trio_ollama.testing import FakeRunners

CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)


def roomy_devices() -> FakeDevices:
    """A machine with room for any tiny model: 48 of 64 GiB free, no GPU."""
    return FakeDevices(system=SystemMemory(total=64 * GiB, free=48 * GiB, free_swap=0))


@attrs.define
class Engines(FakeRunners):
    """`FakeRunners` whose engines all take `config`, whatever the model: a test sets it (to
    slow them down, break or script them) before the load."""

    config: FakeConfig = attrs.field(factory=FakeConfig, kw_only=True)

    def __call__(self, load: Load, model: ModelSpec) -> Startable:
        # The model's own "fake" facts are how FakeRunners configures an engine.
        fake = {field.name: getattr(self.config, field.name) for field in attrs.fields(FakeConfig)}
        return super().__call__(load, attrs.evolve(model, extra=(*model.extra, ("fake", fake))))

    @property
    def made(self) -> list[FakeEngine]:
        """Every engine made, oldest first."""
        return [engine for _, engine in self.engines]


@attrs.frozen
class Server:
    app: QuartTrio
    scheduler: Scheduler
    engines: Engines


@asynccontextmanager
async def open_server(tmp_path: Path, **env: str) -> AsyncIterator[Server]:
    """The app over fake engines, on a store holding "tiny"; `env` adds `OLLAMA_*` settings
    (two slots by default)."""
    store = Store(tmp_path / "models")
    data = write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    digest, _ = store.write_blob_bytes(data)
    store.create("tiny", CreateRequest(files={"tiny.gguf": digest}, template=CHATML))
    settings = Settings.from_env(
        {"OLLAMA_MODELS": str(tmp_path / "models"), "OLLAMA_NUM_PARALLEL": "2", **env}
    )
    engines = Engines()
    async with open_scheduler(
        settings, runner_factory=engines, devices=roomy_devices(), cores=2
    ) as scheduler:
        app = create_app(Service(settings, store, scheduler))
        yield Server(app, scheduler, engines)


async def post(server: Server, path: str, body: Any = None, raw: bytes | None = None) -> Any:
    """The whole response, read as it streams (Quart's `client.post` buffers only ten body
    chunks before it reads any, so a longer stream would wait on it forever)."""
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with server.app.test_client().request(path, method="POST", headers=headers) as call:
        await call.send(data)
        await call.send_complete()
        return await call.as_response()


async def ndjson(response: Any) -> list[dict[str, Any]]:
    text = (await response.get_data()).decode()
    return [json.loads(line) for line in text.splitlines() if line]


def http_scope(method: str, path: str) -> dict[str, Any]:
    """An ASGI scope, for a test that speaks ASGI to the app itself (to hang up, or to time
    what it sends)."""
    return {
        "type": "http", "http_version": "1.1", "asgi": {"spec_version": "2.1"},
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "extensions": {},
    }  # fmt: skip


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition` (the scheduler has no event for each); fail the test after 5 s."""
    with trio.fail_after(5):
        while True:
            if condition():
                return
            await trio.sleep(0.01)


async def idle(scheduler: Scheduler) -> None:
    """Wait until no runner has a request in flight."""
    await until(lambda: not any(r.refcount for r in scheduler.running()))


# ----- `serve` on a loopback port


def tiny_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings for `open_served`: a store under `tmp_path` holding "tiny", a free loopback
    port; `env` adds `OLLAMA_*` variables."""
    store = Store(tmp_path / "models")
    digest, _ = store.write_blob_bytes(write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes())
    store.create("tiny", CreateRequest(files={"tiny.gguf": digest}, template=CHATML))
    return Settings.from_env({
        "OLLAMA_MODELS": str(tmp_path / "models"), "OLLAMA_HOST": "127.0.0.1:0",
        "OLLAMA_NOPRUNE": "1", **env,
    })  # fmt: skip


class Served:
    """`serve` in a nursery with a trigger the test pulls; `ended` is set when it returns."""

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self.stop = trio.Event()
        self.ended = trio.Event()
        self.url = ""


async def open_served(
    nursery: trio.Nursery, settings: Settings, grace: float, **fake: Any
) -> Served:
    """`serve` on a loopback port, its fake engines made with `FakeConfig(**fake)`."""
    served = Served(Engines(config=FakeConfig(**fake)))

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(
                settings, shutdown_trigger=served.stop.wait, grace=grace, task_status=task_status,
                runner_factory=served.engines, devices=roomy_devices(), cores=2,
            )  # fmt: skip
        finally:
            served.ended.set()

    binds: list[str] = await nursery.start(run)
    served.url = binds[0]
    return served


async def stream_lines(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], first: trio.Event | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """The status and every NDJSON line of a streamed answer; `first` is set at the first."""
    async with client.stream("POST", path, json=body) as response:
        lines = []
        async for line in response.aiter_lines():
            if line:
                lines.append(json.loads(line))
                if first is not None:
                    first.set()
        return response.status_code, lines
