"""What every part of the native API's work shares: a stored model looked up by name, its
prompt machinery and spec (kept by name and manifest digest), and a runner slot leased for it.

`ModelAccess` holds the server's parts (settings, store, scheduler, metrics, downloads) and
these lookups; each job (`generation`, `embedding`, `admin`, `transfers`) is a subclass of it,
and `service.Service` is all of them at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import attrs
import trio

from trio_ollama.api import records
from trio_ollama.api.errors import APIError, runner_error, scheduler_error, store_error
from trio_ollama.api.metrics import Metrics
from trio_ollama.config import Settings
from trio_ollama.gguf_info import GGUFError
from trio_ollama.names import InvalidNameError
from trio_ollama.options import LOAD_OPTIONS, check_option, defaults
from trio_ollama.prompt import CACHED_TEMPLATE_BYTES, ModelPrompt, PromptError
from trio_ollama.registry import Downloads
from trio_ollama.runner.client import RunnerError
from trio_ollama.runner.connection import RunnerConnection
from trio_ollama.scheduler import Lease, ModelSpec, RunnerOptions, Scheduler, SchedulerError
from trio_ollama.specs import NoWeightsError, model_spec
from trio_ollama.store import CorruptModelError, ModelDetails, ModelNotFoundError, Store

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_REMEMBERED = 64  # models' prompts and specs kept, the least recently stored dropped first


@contextmanager
def prompt_errors() -> Iterator[None]:
    """A prompt that cannot be made: the client's fault (400) or the model's (500)."""
    try:
        yield
    except PromptError as exc:
        raise APIError(400 if exc.invalid else 500, str(exc)) from exc


def merge_options(model: ModelDetails, request: dict[str, Any], default_ctx: int) -> dict[str, Any]:
    """Ollama's order: defaults, then the model's PARAMETERs, then the request's options."""
    merged = defaults(default_ctx)
    for key, value in model.parameters.items():
        try:
            merged[key] = check_option(key, value)
        except (KeyError, ValueError):
            log.warning("ignoring model parameter %s=%r", key, value)
    merged.update(request)
    return merged


def runner_options_of(options: dict[str, Any]) -> RunnerOptions:
    return RunnerOptions(**{k: options[k] for k in LOAD_OPTIONS})


def window_of(runner: RunnerConnection) -> tuple[int, int]:
    """The runner's context window and the most bytes of text one of its tokens stands for
    (0: unknown), the bound `runner.window` cuts by."""
    ready = runner.ready
    return (ready.num_ctx, ready.max_token_bytes) if ready is not None else (0, 0)


def _remember(cache: dict[tuple[str, str], _T], key: tuple[str, str], value: _T) -> None:
    cache[key] = value
    while len(cache) > _REMEMBERED:
        del cache[next(iter(cache))]


@attrs.define
class ModelAccess:
    settings: Settings
    store: Store
    scheduler: Scheduler
    # Off unless the server gives it one (`serve` does, and watches the scheduler with it).
    metrics: Metrics = attrs.field(factory=lambda: Metrics(enabled=False))
    # The blob downloads in flight, shared by every pull (one download per blob).
    downloads: Downloads = attrs.field(factory=Downloads)
    # A model's own prompt machinery and spec, by its name and manifest digest (the digest
    # covers every layer, so a changed model is a new key). Working them out the first time
    # parses a template and reads a GGUF header, in a worker thread; after that a request
    # saves the two trips (0.2 to 0.8 ms each on a loaded 2-core machine). A blob deleted
    # behind the store's back is still noticed at every request: `Store.show` checks each
    # layer's blob before the cache is consulted.
    _prompts: dict[tuple[str, str], ModelPrompt] = attrs.field(factory=dict, init=False)
    _specs: dict[tuple[str, str], ModelSpec] = attrs.field(factory=dict, init=False)

    async def _thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await trio.to_thread.run_sync(fn, *args)

    async def prompt_of(self, details: ModelDetails, template: str | None = None) -> ModelPrompt:
        """`ModelPrompt.of(details, template)`; a request's own template is parsed anew."""
        key = (str(details.name), details.digest)
        found = self._prompts.get(key) if template is None else None
        if found is None:
            with prompt_errors():
                found = await self._thread(ModelPrompt.of, details, template)
            # A huge parsed template is not kept, as prompt.py keeps none (memory).
            if template is None and len(details.template or "") <= CACHED_TEMPLATE_BYTES:
                _remember(self._prompts, key, found)
        return found

    async def details(self, name: str, *, not_found: str) -> ModelDetails:
        """The stored model named `name`; `not_found` formats the 404 (it gets `{name}`). The
        request's record (its log line, its metrics' `model` label) takes the stored name.
        A damaged model is refused here, whatever its damage, for every endpoint alike."""

        def read() -> ModelDetails:
            found = self.store.show(name)
            # The weights' header too (checked, and cached by file), in this worker thread:
            # not later, on the event loop or in a path that does not expect `GGUFError`.
            _ = found.gguf
            return found

        try:
            details = await self._thread(read)
        except InvalidNameError:
            raise APIError(404, not_found.format(name=name)) from None
        except ModelNotFoundError:
            raise APIError(404, not_found.format(name=name)) from None
        except CorruptModelError as exc:
            raise store_error(exc) from exc
        except GGUFError as exc:
            raise APIError(500, str(exc)) from exc
        record = records.current()
        if record is not None:
            record.model = details.name.display_shortest
        return details

    async def spec(self, details: ModelDetails) -> ModelSpec:
        key = (str(details.name), details.digest)
        found = self._specs.get(key)
        if found is None:
            try:
                found = await self._thread(model_spec, details)
            except (NoWeightsError, GGUFError, OSError) as exc:
                raise APIError(500, str(exc)) from exc
            _remember(self._specs, key, found)
        return found

    @asynccontextmanager
    async def _leased(
        self,
        spec: ModelSpec,
        options: dict[str, Any],
        keep_alive: float | None,
        priority: int | None = None,
    ) -> AsyncIterator[Lease]:
        """A runner slot. The scheduler's refusals (busy, load failure) and the runner's (a
        request too long, a runner that died) become API errors, whatever in the block met them.
        """
        entered = False
        try:
            async with self.scheduler.acquire(
                spec, runner_options_of(options), keep_alive, priority
            ) as lease:
                entered = True
                record = records.current()
                if record is not None:
                    record.queue_wait = lease.load_duration
                yield lease
        except SchedulerError as exc:
            if entered:
                raise
            raise scheduler_error(exc) from exc
        except RunnerError as exc:
            raise runner_error(exc) from exc
