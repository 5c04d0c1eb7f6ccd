"""The scheduler: Ollama's `server/sched.go` rules on Trio's primitives.

Three concerns, kept apart:
- process machinery: one task per runner in `runners` nursery, owning the runner via a factory;
- scheduling state: `loaded`, refcounts, waiters; changed only by the synchronous methods below,
  with no `await` between a check and the change it gates (Trio makes each one atomic);
- policy: pure functions in `policy.py` and `memory.py`.

Requests flow: `acquire` takes a free slot of a loaded, compatible runner at once (the fast path);
waits in that runner's queue for a slot; or queues on `pending`, where a lane loads, evicts and
reloads: one lane, one model at a time, as Ollama; or with fair queues one lane per model, the
lanes taking turns at each decision. Queues serve by priority (with aging), then arrival; with
no priorities configured that is arrival order. Leaving `acquire` sends `finished`; keep-alive
deadlines, expiry requests and dead runners send `expired`; runner tasks send `unloaded` once
their process is gone. The policies of the configuration file (docs/policies.md) are read
through `model_policy`; without a file every rule is Ollama's.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import attrs
import trio
import trio.lowlevel

from trio_ollama.concurrency import sole_exception, unwrap_single
from trio_ollama.config import Settings
from trio_ollama.config_file import ModelPolicy
from trio_ollama.cpus import available_cpus
from trio_ollama.runner.client import LoadError
from trio_ollama.runner.connection import RunnerConnection
from trio_ollama.runner.process import RunnerProcess
from trio_ollama.runner.protocol import Load, Ready, RunnerOptions
from trio_ollama.scheduler import policy
from trio_ollama.scheduler.devices import Devices, GPUInfo, SystemDevices
from trio_ollama.scheduler.memory import (
    RECOVERY_POLL_INTERVAL,
    RECOVERY_TIMEOUT,
    InsufficientSystemMemory,
    LoadOptions,
    LoadPlan,
    LoadRequiredFull,
    model_supports_flash_attention,
    needs_vram_recovery,
    plan_load,
    total_free,
    update_free_space,
    vram_recovered,
)
from trio_ollama.scheduler.types import (
    INCOMPATIBLE,
    LoadFailed,
    ModelSpec,
    NoEvents,
    RejectReason,
    SchedulerClosed,
    SchedulerError,
    SchedulerEvents,
    ServerBusy,
    UnloadReason,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")
# A preload that failed, or crashed within PRELOAD_STABLE_SECONDS of loading, is tried again
# after this long, doubling up to the maximum.
PRELOAD_RETRY_SECONDS = 1.0
# Ollama's smallest context for a model that sees (its projector's images take hundreds of
# tokens each).
VISION_MIN_CTX = 2048
PRELOAD_RETRY_MAX_SECONDS = 60.0
PRELOAD_STABLE_SECONDS = 60.0
# How long a preload waits for the runner a request's reload puts in its place.
PRELOAD_FOLLOW_SECONDS = 5.0


class Startable(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[RunnerConnection]) -> None: ...


RunnerFactory = Callable[[Load, ModelSpec], Startable]


def process_factory(settings: Settings) -> RunnerFactory:
    def make(load: Load, model: ModelSpec) -> Startable:
        return RunnerProcess(load, load_timeout=settings.load_timeout)

    return make


@attrs.define(eq=False)
class Runner:
    """A loaded (or loading) model: its state in the table and its handle."""

    model: ModelSpec
    options: RunnerOptions
    num_parallel: int
    keep_alive: float
    plan: LoadPlan
    client: RunnerConnection | None = None
    ready: Ready | None = None
    refcount: int = 0
    loading: bool = True
    expiring: bool = False  # will unload when idle; takes no new requests
    unloading: bool = False
    last_used: float = 0.0
    expires_at: float = math.inf  # trio time; inf while busy or kept forever
    threads: int = 0
    pinned: bool = False  # never evicted for another model (the configuration file says)
    loaded_at: float = 0.0
    load_seconds: float = 0.0  # what loading it took: what evicting it may cost again
    uses: int = 0  # requests served since it loaded
    recency: int = 0  # the order of last uses, for ties of `last_used`
    slot_waiters: WaitQueue = attrs.field(factory=lambda: WaitQueue())
    stop: trio.Event = attrs.field(factory=trio.Event)
    idle_scope: trio.CancelScope | None = None
    rearm: trio.Event = attrs.field(factory=trio.Event)
    unloaded: trio.Event = attrs.field(factory=trio.Event)
    load_done: trio.Event = attrs.field(factory=trio.Event)  # loaded, or failed to
    unload_reason: UnloadReason | None = None  # the first reason given wins

    @property
    def dead(self) -> bool:
        return self.client is not None and self.client.dead

    @property
    def usable(self) -> bool:
        return not (self.loading or self.expiring or self.unloading or self.dead)

    @property
    def size(self) -> int:
        """Bytes in use: what the runner reported once ready, the estimate before."""
        if self.ready is not None and not self.plan.gpus:
            return self.ready.total_bytes
        return self.plan.estimate.total_size

    @property
    def vram_size(self) -> int:
        return self.plan.estimate.vram_size

    @property
    def num_ctx(self) -> int:
        return self.ready.num_ctx if self.ready is not None else self.options.num_ctx


@attrs.define(eq=False)
class _Request:
    model: ModelSpec
    options: RunnerOptions
    keep_alive: float | None
    reply: trio.MemorySendChannel[Runner | BaseException]
    seq: int
    priority: int
    key: tuple[float, float]  # its place in a queue: policy.queue_key
    cancelled: bool = False  # answered or gone: no longer counted as waiting
    queue: WaitQueue | None = None  # the queue it waits in, if any

    def gone(self) -> bool:
        # A method, not the attribute: other tasks set `cancelled` across our awaits.
        return self.cancelled


class WaitQueue:
    """Waiting requests, served lowest `key` first (priority with aging, then arrival: with
    equal priorities, arrival order). Removal is eager, so that a request that left holds no
    memory and its neighbours' places stay exact."""

    def __init__(self) -> None:
        self._heap: list[tuple[tuple[float, float], int, _Request]] = []

    def push(self, request: _Request) -> None:
        request.queue = self
        heapq.heappush(self._heap, (request.key, request.seq, request))

    def pop(self) -> _Request | None:
        """The first request still waiting, or None."""
        while self._heap:
            request = heapq.heappop(self._heap)[2]
            request.queue = None
            if not request.cancelled:
                return request
        return None

    def remove(self, request: _Request) -> None:
        for i, entry in enumerate(self._heap):
            if entry[2] is request:
                self._heap[i] = self._heap[-1]
                self._heap.pop()
                heapq.heapify(self._heap)
                request.queue = None
                return

    def drain(self) -> list[_Request]:
        """Everyone, in order, leaving the queue empty."""
        out = []
        while (request := self.pop()) is not None:
            out.append(request)
        return out

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __iter__(self) -> Iterator[_Request]:
        return (entry[2] for entry in sorted(self._heap))


@attrs.frozen
class Lease:
    """What a request holds inside `acquire`: a runner slot, and how long it took to get."""

    runner: RunnerConnection
    model: ModelSpec
    num_ctx: int
    load_duration: float


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        *,
        runner_factory: RunnerFactory | None = None,
        devices: Devices | None = None,
        cores: int | None = None,
        events: SchedulerEvents | None = None,
    ) -> None:
        self.settings = settings
        self.policies = settings.policies
        self._model_policies: dict[str, ModelPolicy] = {}
        self.events: SchedulerEvents = events or NoEvents()
        self.factory = runner_factory or process_factory(settings)
        self.devices = devices or SystemDevices()
        self.cores = cores or available_cpus()
        self.loaded: dict[str, Runner] = {}
        self.waiting = 0  # pending + slot waiters: what OLLAMA_MAX_QUEUE bounds
        # The same by runner key (what one runner serves, whatever name it was asked by), and
        # the name to show for each key.
        self.waiting_by_key: collections.Counter[str] = collections.Counter()
        self.key_names: dict[str, str] = {}
        self.max_runners: int | None = None
        self.loads = 0  # loads started, for tests and metrics
        self._seq = itertools.count()
        self._recency = itertools.count(1)
        # Unbounded: `waiting` is the bound, because a cancelled request still sitting in the
        # channel must not count against OLLAMA_MAX_QUEUE.
        self.pending_send, self.pending_receive = trio.open_memory_channel[_Request](math.inf)
        self.finished_send, self.finished_receive = trio.open_memory_channel[Runner](math.inf)
        self.expired_send, self.expired_receive = trio.open_memory_channel[Runner](math.inf)
        self.unloaded_send, self.unloaded_receive = trio.open_memory_channel[Runner](math.inf)
        self._nursery: trio.Nursery | None = None
        self._runners: trio.Nursery | None = None
        # Requests that must load, eviction and reload: one lane serves them in order (Ollama's
        # one-at-a-time), or with fair queues one lane per model, the lanes taking turns at the
        # decisions that read and change the loaded set (`_deciding`) and loading side by side.
        self._lanes: dict[str, WaitQueue] = {}
        self._deciding = trio.Lock()
        self._table_changed = trio.Event()  # set (and replaced) when a runner is registered
        self.closed = False

    # ----- lifetime

    async def run(
        self, *, task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the scheduler's loops until cancelled; every runner ends with it."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                async with trio.open_nursery() as runners:
                    self._runners = runners
                    nursery.start_soon(self._pending_loop)
                    nursery.start_soon(self._completed_loop)
                    task_status.started(self)
                    await trio.sleep_forever()
        finally:
            self.closed = True

    # ----- the request scope

    @asynccontextmanager
    async def acquire(
        self,
        model: ModelSpec,
        options: RunnerOptions | None = None,
        keep_alive: float | None = None,
        priority: int | None = None,
    ) -> AsyncIterator[Lease]:
        """Hold a slot of a runner for `model` for the length of the block.

        Leaving the block, by any route, gives the slot back. Raises `ServerBusy` when
        OLLAMA_MAX_QUEUE requests already wait (or the model's own bound), `LoadFailed` when
        the model cannot load. While it waits, lower `priority` values go first (the model's
        configured priority when None).
        """
        if self.closed or self._nursery is None:
            raise SchedulerClosed("scheduler is not running")
        await trio.lowlevel.checkpoint_if_cancelled()  # a request already cancelled never queues
        started = trio.current_time()
        runner = await self._get_runner(model, self._options(model, options), keep_alive, priority)
        self.events.waited(model.name, trio.current_time() - started)
        try:
            assert runner.client is not None
            yield Lease(
                runner=runner.client,
                model=runner.model,
                num_ctx=runner.num_ctx,
                load_duration=trio.current_time() - started,
            )
        finally:
            self.finished_send.send_nowait(runner)

    def _options(self, model: ModelSpec, options: RunnerOptions | None) -> RunnerOptions:
        # Ollama's floor for a model that sees: an image alone may take hundreds of tokens.
        return (options or RunnerOptions(num_ctx=self.settings.context_length)).normalized(
            model.info.context_length, minimum=VISION_MIN_CTX if model.projectors else 4
        )

    def model_policy(self, name: str) -> ModelPolicy:
        """What the configuration file says of the model `name` (defaults when nothing)."""
        found = self._model_policies.get(name)
        if found is None:
            found = self._model_policies[name] = self.policies.for_model(name)
        return found

    def effective_policy(self, name: str, embedding_only: bool = False) -> ModelPolicy:
        """What applies to model `name`, every field filled in: its own settings, else the
        server's. An embedding model has one slot; a pinned one is kept for ever."""
        own = self.model_policy(name)
        keep_alive = own.keep_alive if own.keep_alive is not None else self.settings.keep_alive
        return attrs.evolve(
            own,
            num_parallel=1 if embedding_only else (
                own.num_parallel or self.settings.effective_num_parallel
            ),
            keep_alive=math.inf if own.pinned else keep_alive,
            max_queue=min(own.max_queue, self.settings.max_queue)
            if own.max_queue is not None else self.settings.max_queue,
        )  # fmt: skip

    async def _get_runner(
        self,
        model: ModelSpec,
        options: RunnerOptions,
        keep_alive: float | None,
        priority: int | None = None,
    ) -> Runner:
        runner = self._compatible(model, options)
        if runner is not None and _has_free_slot(runner):
            self._take_slot(runner, keep_alive)
            return runner
        bound = self.model_policy(model.name).max_queue
        if self.waiting >= self.settings.max_queue or (
            bound is not None and self.waiting_by_key[model.key] >= bound
        ):
            self.events.rejected("queue_full")
            raise ServerBusy()
        if priority is None:
            priority = self.model_policy(model.name).priority
        send, receive = trio.open_memory_channel[Runner | BaseException](1)
        request = _Request(
            model, options, keep_alive, send, next(self._seq), priority, self._queue_key(priority)
        )
        if runner is not None:
            runner.slot_waiters.push(request)
        else:
            self.pending_send.send_nowait(request)
        self._count_waiting(request, +1)
        try:
            result = await receive.receive()
        except BaseException:
            self._abandon(request, receive)
            raise
        if isinstance(result, BaseException):
            raise result
        return result

    def _abandon(
        self, request: _Request, receive: trio.MemoryReceiveChannel[Runner | BaseException]
    ) -> None:
        """A waiting request went away: uncount it now, and give back a runner it was sent."""
        receive.close()
        if not request.cancelled:
            request.cancelled = True
            self._count_waiting(request, -1)
            if request.queue is not None:
                request.queue.remove(request)
        try:
            late = receive.receive_nowait()
        except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
            return
        if isinstance(late, Runner):
            self.finished_send.send_nowait(late)

    # ----- state changes (synchronous: each is atomic under Trio)

    def _take_slot(self, runner: Runner, keep_alive: float | None) -> None:
        runner.refcount += 1
        runner.uses += 1
        runner.last_used = trio.current_time()
        runner.recency = next(self._recency)
        if keep_alive is not None and not runner.pinned:
            runner.keep_alive = policy.resolve_keep_alive(keep_alive, None, 0)
        self._set_idle_deadline(runner, math.inf)
        if runner.refcount == 1:
            self._rebalance_threads()

    def _hand_over(self, runner: Runner, request: _Request) -> bool:
        """Give a slot to a waiting request; False if it has gone away meanwhile."""
        if request.cancelled:
            return False
        request.cancelled = True  # answered: no longer counted as waiting
        self._count_waiting(request, -1)
        self._take_slot(runner, request.keep_alive)
        try:
            request.reply.send_nowait(runner)
        except (trio.BrokenResourceError, trio.WouldBlock):
            self._release(runner)
            return False
        return True

    def _count_waiting(self, request: _Request, change: int) -> None:
        self.waiting += change
        key = request.model.key
        self.waiting_by_key[key] += change
        if self.waiting_by_key[key]:
            self.key_names.setdefault(key, request.model.name)
        else:
            del self.waiting_by_key[key]
            self.key_names.pop(key, None)

    def _refuse(self, request: _Request, error: BaseException) -> None:
        if request.cancelled:
            return
        request.cancelled = True
        self._count_waiting(request, -1)
        reason: RejectReason = "queue_full" if isinstance(error, ServerBusy) else "load_failed"
        self.events.rejected(reason)
        try:
            request.reply.send_nowait(error)
        except (trio.BrokenResourceError, trio.WouldBlock):
            pass

    def _release(self, runner: Runner) -> None:
        """A request left: pass its slot to the first waiter, or start the idle clock."""
        runner.refcount -= 1
        runner.last_used = trio.current_time()
        runner.recency = next(self._recency)
        while runner.usable and (waiter := runner.slot_waiters.pop()) is not None:
            if self._hand_over(runner, waiter):
                return
        if runner.refcount > 0:
            return
        self._rebalance_threads()
        if runner.expiring or runner.keep_alive <= 0 or runner.dead:
            self._unload(runner, _idle_reason(runner))
        else:
            self._set_idle_deadline(runner, runner.last_used + runner.keep_alive)

    def _set_idle_deadline(self, runner: Runner, deadline: float) -> None:
        runner.expires_at = deadline
        if runner.idle_scope is not None:
            runner.idle_scope.deadline = deadline
        else:
            runner.rearm.set()

    def _compatible(self, model: ModelSpec, options: RunnerOptions) -> Runner | None:
        runner = self.loaded.get(model.key)
        if runner is None or not runner.usable or policy.needs_reload(runner, model, options):
            return None
        return runner

    def _expire(self, runner: Runner, reason: UnloadReason) -> None:
        """Unload now if idle, else as soon as its last request leaves; take no new ones."""
        if runner.unloading:
            return
        runner.unload_reason = runner.unload_reason or reason
        runner.expiring = True
        runner.expires_at = trio.current_time()
        if runner.refcount == 0:
            self._unload(runner, reason)
        else:
            # Waiters for its slots go back to the queue and will load it afresh.
            for request in runner.slot_waiters.drain():
                self._requeue(request)

    def _queue_key(self, priority: int) -> tuple[float, float]:
        return policy.queue_key(priority, trio.current_time(), self.policies.priority_aging)

    def _requeue(self, request: _Request) -> None:
        # Back to the load queue, behind those already there, as Ollama requeues.
        request.seq = next(self._seq)
        request.key = self._queue_key(request.priority)
        try:
            self.pending_send.send_nowait(request)
        except trio.WouldBlock:
            self._refuse(request, ServerBusy())

    def _unload(self, runner: Runner, reason: UnloadReason) -> None:
        if runner.unloading:
            return
        runner.unload_reason = runner.unload_reason or reason
        runner.unloading = True
        runner.expiring = True
        log.info(
            "unloading model",
            extra={"model": runner.model.name, "pid": self._pid(runner),
                   "reason": runner.unload_reason},
        )  # fmt: skip
        runner.stop.set()

    def _rebalance_threads(self) -> None:
        """Give the cores to the runners decoding now; a runner alone gets them all."""
        busy = [
            r for r in self.loaded.values()
            if r.refcount > 0 and r.client is not None and not r.plan.gpus
            and r.options.num_thread == 0
        ]  # fmt: skip
        shares = policy.thread_shares(self.cores, [r.model.key for r in busy])
        for r in busy:
            n = shares[r.model.key]
            if n != r.threads and r.client is not None and self._nursery is not None:
                r.threads = n
                self._nursery.start_soon(_send_threads, r.client, n)

    async def _device_call(self, fn: Callable[[], _T]) -> _T:
        # NVML and /proc block; simulated devices answer at once, and calling them inline keeps
        # MockClock from jumping time while a worker thread runs.
        if getattr(self.devices, "blocking", True):
            return await trio.to_thread.run_sync(fn)
        return fn()

    async def _gpus(self) -> tuple[GPUInfo, ...]:
        return await self._device_call(self.devices.gpus)

    @staticmethod
    def _pid(runner: Runner) -> int | None:
        return runner.client.pid if runner.client is not None else None

    # ----- operations for the API

    def expire_model(self, model: ModelSpec) -> None:
        """`keep_alive: 0` with no prompt: unload now, or when the last request leaves."""
        runner = self.loaded.get(model.key)
        if runner is not None:
            runner.keep_alive = 0
            self.expired_send.send_nowait(runner)

    def keep_loaded(self, model: ModelSpec, options: RunnerOptions | None = None) -> None:
        """Load `model` now, in the background, and again whenever its runner crashes.

        For `preload`: the server answers while it loads. Watching ends when the runner
        unloads for any other reason (its keep-alive, eviction, a stop) or the scheduler ends.
        A load that fails is tried again, waiting longer each time (up to a minute).
        """
        assert self._nursery is not None, "the scheduler is not running"
        self._nursery.start_soon(self._keep_loaded, model, self._options(model, options))

    async def _keep_loaded(self, model: ModelSpec, options: RunnerOptions) -> None:
        delay = PRELOAD_RETRY_SECONDS
        while True:
            runner = self.loaded.get(model.key)
            if runner is not None and runner.unloading:
                await runner.unloaded.wait()
                continue
            if runner is None:
                try:
                    runner = await self._get_runner(model, options, None)
                except SchedulerError as exc:
                    log.warning(
                        "could not preload model, trying again",
                        extra={"model": model.name, "error": str(exc), "retry_in": delay},
                    )
                    await trio.sleep(delay)
                    delay = min(delay * 2, PRELOAD_RETRY_MAX_SECONDS)
                    continue
                log.info("model preloaded", extra={"model": model.name})
                self.finished_send.send_nowait(runner)
            # Else a request loaded it (perhaps with other options): watch that runner as it is.
            up_since = trio.current_time()
            await runner.unloaded.wait()
            if runner.unload_reason == "reload":
                # A request reloads it with other options: follow its runner once the request's
                # lane has put it in the table, rather than race it with our own options.
                with trio.move_on_after(PRELOAD_FOLLOW_SECONDS):
                    while model.key not in self.loaded:
                        await self._table_changed.wait()
                continue
            if runner.ready is not None and runner.unload_reason != "crashed":
                return  # its keep-alive, an eviction, a stop: not ours to undo
            if runner.ready is not None:
                log.warning(
                    "preloaded model crashed: loading it again", extra={"model": model.name}
                )
            if (
                runner.ready is not None
                and trio.current_time() - up_since >= PRELOAD_STABLE_SECONDS
            ):
                delay = PRELOAD_RETRY_SECONDS
            else:  # it failed to load, or crashed soon after: back off, as after a failed load
                await trio.sleep(delay)
                delay = min(delay * 2, PRELOAD_RETRY_MAX_SECONDS)

    def running(self) -> list[Runner]:
        """Loaded runners, for `/api/ps`: newest expiry first."""
        return sorted(
            (r for r in self.loaded.values() if not r.loading),
            key=lambda r: r.expires_at,
            reverse=True,
        )

    # ----- the pending loop: loads, evictions, reloads

    async def _pending_loop(self) -> None:
        async with trio.open_nursery() as lanes:
            async for request in self.pending_receive:
                if request.cancelled:
                    continue
                lane = request.model.key if self.policies.fair_queues else ""
                queue = self._lanes.get(lane)
                if queue is None:
                    queue = self._lanes[lane] = WaitQueue()
                    lanes.start_soon(self._serve_lane, lane, queue)
                queue.push(request)

    async def _serve_lane(self, lane: str, queue: WaitQueue) -> None:
        """Serve one lane's requests in order, then end; the next arrival starts it again."""
        while (request := queue.pop()) is not None:
            try:
                await self._serve_pending(request)
            except Exception as exc:
                # One request's surprise must not stop the lane that serves all the others.
                log.exception("could not serve a request for %s", request.model.name)
                self._refuse(request, LoadFailed(_describe(exc)))
        del self._lanes[lane]

    async def _serve_pending(self, request: _Request) -> None:
        """Decide, under `_deciding`, then wait or load outside it, until the request is served.

        Each decision reads the loaded set and changes it with no other lane's decision in
        between; what takes long (a runner draining, a process starting) happens after the
        lock is let go, so other lanes decide meanwhile.
        """
        while not request.gone():
            async with self._deciding:
                step = await self._decide(request)
            if step is None:
                return
            wait, again = step
            await wait()
            if not again:
                return

    async def _decide(self, request: _Request) -> tuple[Callable[[], Awaitable[Any]], bool] | None:
        """The next step for a request that must load: None when it is served or refused;
        else something to wait for, and whether to decide again after it."""
        runner = self.loaded.get(request.model.key)
        if runner is not None and not runner.unloading:
            if self._compatible(request.model, request.options) is runner:
                if _has_free_slot(runner):
                    self._hand_over(runner, request)
                else:
                    runner.slot_waiters.push(request)
                return None
            # Loaded with other options, or dead, or draining: unload it, then load anew.
            self._expire(runner, "crashed" if runner.dead else "reload")
        if runner is not None:
            return runner.unloaded.wait, True
        if self.max_runners is None:
            self.max_runners = self.settings.max_runners(len(await self._gpus()))
        pinned = [r for r in self.loaded.values() if r.pinned]
        if len(self.loaded) >= self.max_runners:
            if len(pinned) >= self.max_runners:
                self._refuse_beside_pinned(request, "evicted_max_models")
                return None
            return self._evict(request, "evicted_max_models")
        try:
            plan = await self._plan(request)
        except LoadRequiredFull:
            if pinned and not await self._fits_beside(request, pinned):
                # Evicting the others would not make room: unload nothing for nothing.
                self._refuse_beside_pinned(request, "evicted_memory")
                return None
            return self._evict(request, "evicted_memory")
        except InsufficientSystemMemory as exc:
            self._refuse(request, LoadFailed(str(exc)))
            return None
        if request.gone():
            return None  # it left while we planned: load nothing for nobody
        runner, load = self._register(request, plan)
        return functools.partial(self._load, request, runner, load), False

    def _evict(
        self, request: _Request, reason: UnloadReason
    ) -> tuple[Callable[[], Awaitable[Any]], bool] | None:
        """Expire the runner the eviction policy picks, and wait for it to go; refuse the
        request when none may go (all pinned)."""
        runners = list(self.loaded.values())
        # With fair queues, other lanes' loads and evictions are under way: a runner already
        # loading or leaving is not chosen again, so each lane frees room of its own.
        fair = self.policies.fair_queues
        changing = [r for r in runners if r.loading or (fair and r.expiring)]
        settled = [r for r in runners if r not in changing]
        if self.policies.eviction == "cost":
            victim = policy.find_runner_to_unload_by_cost(settled, trio.current_time())
        else:
            victim = policy.find_runner_to_unload(settled)
        if victim is None and (waiting_on := [r for r in changing if not r.pinned]):
            # Nothing else may go: decide again once one of them has loaded or gone.
            r = waiting_on[0]
            return (r.load_done.wait if r.loading else r.unloaded.wait), True
        if victim is None:
            self._refuse_beside_pinned(request, reason)
            return None
        log.info(
            "evicting model to make room", extra={"model": victim.model.name, "reason": reason}
        )
        self._expire(victim, reason)
        return victim.unloaded.wait, True

    def _refuse_beside_pinned(self, request: _Request, reason: UnloadReason) -> None:
        pinned = sorted(r.model.name for r in self.loaded.values() if r.pinned)
        message = f"model {request.model.name} does not fit"
        if pinned:
            message += f" beside the pinned models ({', '.join(pinned)}), never unloaded"
        if reason == "evicted_max_models":
            limit = f"at most {self.max_runners} models loaded at once"
            message += f": {limit} (OLLAMA_MAX_LOADED_MODELS)"
        self._refuse(request, LoadFailed(message))

    async def _fits_beside(self, request: _Request, kept: list[Runner]) -> bool:
        """Whether the model would fit if every loaded runner but `kept` were gone."""
        try:
            await self._plan(request, kept)
        except (LoadRequiredFull, InsufficientSystemMemory):
            return False
        return True

    async def _plan(self, request: _Request, kept: list[Runner] | None = None) -> LoadPlan:
        """Where the model would go now; with `kept`, as if only those runners were loaded
        (the memory of the others counted as free again)."""
        others = [r for r in self.loaded.values() if kept is not None and r not in kept]
        counted = list(self.loaded.values()) if kept is None else kept
        gpus: tuple[GPUInfo, ...] = ()
        if request.options.num_gpu != 0:
            freed: dict[str, int] = {}
            for r in others:
                for gpu_id, nbytes in r.plan.estimate.vram_by_gpu().items():
                    freed[gpu_id] = freed.get(gpu_id, 0) + nbytes
            gpus = update_free_space(
                [g.with_free(min(g.total_memory, g.free_memory + freed.get(g.id, 0)))
                 for g in await self._gpus()],
                [r.plan.estimate.vram_by_gpu() for r in counted],
            )  # fmt: skip
        system = await self._device_call(self.devices.system_memory)
        # A runner still loading does not show in the reported figure yet (loads overlap only
        # with fair queues: one lane loads one model at a time); one that would be gone does.
        loading = sum(r.size - r.vram_size for r in counted if r.loading)
        gone = sum(r.size - r.vram_size for r in others if not r.loading)
        if loading or gone:
            free = min(system.total, max(0, system.free - loading + gone))
            system = attrs.evolve(system, free=free)
        options = LoadOptions.from_settings(
            self.settings,
            num_ctx=request.options.num_ctx,
            num_batch=request.options.num_batch,
            num_gpu=request.options.num_gpu,
            num_parallel=self._parallel_for(request.model),
            projectors=request.model.projector_info,
        )
        return plan_load(
            request.model.info,
            gpus,
            system,
            options,
            require_full=bool(counted),
            sched_spread=self.settings.sched_spread,
        )

    def _parallel_for(self, model: ModelSpec) -> int:
        num_parallel = self.effective_policy(model.name, model.embedding_only).num_parallel
        assert num_parallel is not None
        return num_parallel

    def _register(self, request: _Request, plan: LoadPlan) -> tuple[Runner, Load]:
        """The runner about to load, in the table from now on (its memory counted)."""
        model = request.model
        applies = self.effective_policy(model.name, model.embedding_only)
        assert applies.num_parallel is not None and applies.keep_alive is not None
        busy = sum(1 for r in self.loaded.values() if r.refcount > 0)
        threads = request.options.num_thread or max(1, self.cores // (busy + 1))
        runner = Runner(
            model=model,
            options=request.options,
            num_parallel=applies.num_parallel,
            keep_alive=math.inf if applies.pinned else policy.resolve_keep_alive(
                request.keep_alive, None, applies.keep_alive
            ),
            plan=plan,
            threads=threads,
            pinned=applies.pinned,
        )  # fmt: skip
        # The request's load options, with the GPU layers and threads the plan chose.
        chosen = attrs.evolve(request.options, num_gpu=plan.num_gpu, num_thread=threads)
        load = Load(
            **attrs.asdict(chosen),
            model_path=model.model_path,
            num_parallel=runner.num_parallel,
            # What the estimate counted on: flash attention only where the model and every GPU
            # support it, and a quantized KV cache only with flash attention.
            flash_attention=plan.estimate.flash_attention,
            flash_attention_auto=self.settings.flash_attention is None
            and plan.num_gpu == 0
            and model_supports_flash_attention(model.info),
            kv_cache_type=plan.estimate.kv_cache_type,
            adapters=list(model.adapters),
            embedding=model.embedding_only,
            projector_path=model.projectors[0] if model.projectors else "",
        )
        self.loaded[model.key] = runner
        self.loads += 1
        self._table_changed.set()
        self._table_changed = trio.Event()
        return runner, load

    async def _load(self, request: _Request, runner: Runner, load: Load) -> None:
        try:
            await self._start(request, runner, load)
        finally:
            runner.load_done.set()  # other lanes may wait for it, whatever happened

    async def _start(self, request: _Request, runner: Runner, load: Load) -> None:
        model = request.model
        started = trio.current_time()
        assert self._runners is not None
        try:
            runner.client = await self._runners.start(self._run_runner, runner, load)
        except Exception as exc:  # a load error, or the process could not even start
            self.events.loaded(model.name, trio.current_time() - started, ok=False)
            if self.loaded.get(model.key) is runner:
                del self.loaded[model.key]
            runner.unloaded.set()
            message = _describe(exc)
            if "failed to load model" in message:
                message = f"{message}: {INCOMPATIBLE.format(name=model.name)}"
            self._refuse(request, LoadFailed(message))
            # Anyone who queued for the slot while it loaded tries again from the queue.
            for waiter in runner.slot_waiters.drain():
                self._requeue(waiter)
            return
        runner.loaded_at = trio.current_time()
        runner.load_seconds = runner.loaded_at - started
        self.events.loaded(model.name, runner.load_seconds, ok=True)
        ready = runner.ready = runner.client.ready
        runner.loading = False
        assert ready is not None  # the handshake is done
        log.info(
            "model loaded",
            extra={
                "model": model.name, "pid": runner.client.pid, "size": runner.size,
                "weights_bytes": ready.weights_bytes, "kv_bytes": ready.kv_bytes,
                "compute_bytes": ready.compute_bytes,
            },
        )  # fmt: skip
        if not self._hand_over(runner, request):
            # The requester left during the load: the runner idles until its keep-alive ends.
            self._set_idle_deadline(runner, trio.current_time() + runner.keep_alive)
            if runner.keep_alive <= 0:
                self._unload(runner, "requested")

    async def _run_runner(
        self, runner: Runner, load: Load, *, task_status: trio.TaskStatus[RunnerConnection]
    ) -> None:
        """The one task that owns this runner's process, from load to reaped.

        Unloading sets `runner.stop`: the task notes the GPUs' free memory, ends the process
        (its factory terminates and reaps it), then waits for the memory to show as free again.
        """
        baseline: int | None = None
        try:
            with unwrap_single():  # a load error reaches `_load` as itself
                async with trio.open_nursery() as nursery:
                    client: RunnerConnection = await nursery.start(
                        self.factory(load, runner.model).run
                    )
                    task_status.started(client)
                    nursery.start_soon(self._keep_alive, runner)
                    nursery.start_soon(self._watch_exit, runner, client)
                    await runner.stop.wait()
                    if needs_vram_recovery(runner.plan.gpus):
                        baseline = total_free(await self._gpus())
                    nursery.cancel_scope.cancel()
            if baseline is not None:
                await self._wait_for_vram(runner, baseline)
        finally:
            self.unloaded_send.send_nowait(runner)

    async def _watch_exit(self, runner: Runner, client: RunnerConnection) -> None:
        await client.closed.wait()
        if not runner.unloading:
            # It died on its own: its requests have failed; unload it once they have left.
            log.warning("runner exited", extra={"model": runner.model.name, "pid": client.pid})
            runner.unload_reason = runner.unload_reason or "crashed"
            self.expired_send.send_nowait(runner)

    async def _wait_for_vram(self, runner: Runner, baseline: int) -> None:
        """After an unload, wait (bounded) until the GPUs show most of its memory free again."""
        with trio.move_on_after(RECOVERY_TIMEOUT):
            while True:
                gpus = await self._gpus()
                if vram_recovered(baseline, total_free(gpus), runner.vram_size):
                    return
                await trio.sleep(RECOVERY_POLL_INTERVAL)

    async def _keep_alive(self, runner: Runner) -> None:
        """The runner's idle clock: a cancel scope whose deadline is its expiry.

        Resetting the clock moves the deadline; forever is `math.inf`. When it fires, the
        expired loop decides; if a request took the runner meanwhile, the next idle period
        re-arms the clock through `rearm`.
        """
        while True:
            runner.rearm = trio.Event()
            with trio.CancelScope(deadline=runner.expires_at) as scope:
                runner.idle_scope = scope
                await trio.sleep_forever()
            runner.idle_scope = None
            if runner.refcount == 0 and runner.expires_at <= trio.current_time():
                self.expired_send.send_nowait(runner)
            await runner.rearm.wait()

    # ----- the completed loop: finished leases, expiries, unloads

    async def _completed_loop(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._finished_loop)
            nursery.start_soon(self._expired_loop)
            nursery.start_soon(self._unloaded_loop)

    async def _finished_loop(self) -> None:
        async for runner in self.finished_receive:
            self._release(runner)

    async def _expired_loop(self) -> None:
        async for runner in self.expired_receive:
            if self.loaded.get(runner.model.key) is not runner or runner.loading:
                continue  # already gone, or not loaded yet: a late or duplicate event
            if runner.refcount == 0 or runner.expiring or runner.dead or runner.keep_alive <= 0:
                self._expire(runner, _idle_reason(runner))
            # Otherwise a request took it just as its keep-alive ran out: it stays.

    async def _unloaded_loop(self) -> None:
        async for runner in self.unloaded_receive:
            if self.loaded.get(runner.model.key) is runner:
                del self.loaded[runner.model.key]
            runner.unloading = True
            runner.unloaded.set()
            for request in runner.slot_waiters.drain():
                self._requeue(request)
            reason = runner.unload_reason or "shutdown"
            if runner.ready is not None:  # a failed load is counted as a load, not an unload
                self.events.unloaded(runner.model.name, reason)
            log.info("model unloaded", extra={"model": runner.model.name, "reason": reason})


def _describe(exc: BaseException) -> str:
    """What went wrong, for the requester."""
    exc = sole_exception(exc)
    return str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"


def _idle_reason(runner: Runner) -> UnloadReason:
    """Why an idle runner goes, when nothing said so before."""
    if runner.dead:
        return "crashed"
    return "requested" if runner.keep_alive <= 0 else "keep_alive"


def _has_free_slot(runner: Runner) -> bool:
    # Nobody overtakes a request already waiting for this runner, whatever its priority.
    return runner.refcount < runner.num_parallel and not runner.slot_waiters


async def _send_threads(client: RunnerConnection, n: int) -> None:
    try:
        await client.set_threads(n)
    except Exception:  # a runner that died meanwhile is the runner task's business
        log.debug("could not adjust threads", exc_info=True)


@asynccontextmanager
async def open_scheduler(
    settings: Settings | None = None, **kwargs: Any
) -> AsyncIterator[Scheduler]:
    """A running scheduler for the length of the block; every runner ends with it."""
    scheduler = Scheduler(settings or Settings.from_env(), **kwargs)
    with unwrap_single():  # the block's own exception comes out as itself
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run)
            try:
                yield scheduler
            finally:
                nursery.cancel_scope.cancel()
