"""Pull and push: a registry transfer run beside the reader of its progress."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import trio

from trio_ollama.api.access import ModelAccess
from trio_ollama.api.errors import APIError
from trio_ollama.api.schemas import PullRequest, PushRequest
from trio_ollama.names import ModelName, parse_name
from trio_ollama.registry import RegistryError, TransferOptions, pull_model, push_model
from trio_ollama.registry.client import InsecureProtocolError

log = logging.getLogger(__name__)
Chunks = trio.abc.ReceiveChannel[dict[str, Any]]
Progress = trio.MemorySendChannel[dict[str, Any]]


@attrs.define
class Transfers(ModelAccess):
    async def _registry_name(self, req: PullRequest) -> ModelName:
        name = parse_name(req.model)
        if not name.is_valid:
            raise APIError(400, "invalid model name")
        if req.model.lower().startswith("http://") and not req.insecure:
            raise APIError(500, InsecureProtocolError().message)
        # A model already here keeps its casing (Ollama's getExistingName).
        return await self._thread(self.store.name_for_write, name)

    def pull(self, req: PullRequest) -> AbstractAsyncContextManager[Chunks]:
        options = TransferOptions(
            streams=self.settings.max_transfer_streams,
            smallest_part=self.settings.transfer_part_size,
            prune=not self.settings.noprune,
            save_every=self.settings.transfer_save_every,
        )
        store, downloads = self.store, self.downloads

        async def work(name: ModelName, send: Progress) -> None:
            await pull_model(store, downloads, name, req.insecure, options, send)
            self.metrics.created(name.display_shortest)

        return self._transfer(req, work)

    def push(self, req: PushRequest) -> AbstractAsyncContextManager[Chunks]:
        store = self.store

        async def work(name: ModelName, send: Progress) -> None:
            await push_model(store, name, req.insecure, send)

        return self._transfer(req, work)

    @trio.as_safe_channel
    async def _transfer(
        self, req: PullRequest, work: Callable[[ModelName, Progress], Awaitable[None]]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Run a pull or push beside its reader, passing its statuses on as they come; its
        failure ends the stream as Ollama's does, with the error's text (a 500 when the
        answer is not streamed)."""
        name = await self._registry_name(req)
        send, receive = trio.open_memory_channel[dict[str, Any]](16)
        failure: list[str] = []

        async def run() -> None:
            async with send:
                try:
                    await work(name, send)
                except RegistryError as exc:
                    failure.append(exc.message)
                except OSError as exc:  # the store's disk: full, read-only, ...
                    log.warning("a pull or push failed on the store", exc_info=True)
                    failure.append(str(exc))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            async with receive:
                async for status in receive:
                    yield status
        if failure:
            raise APIError(500, failure[0])
