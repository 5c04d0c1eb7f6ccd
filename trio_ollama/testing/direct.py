"""Simulated runners with a direct transport: the fake engine's timing, without its per-token
rounds through the protocol.

The fake engine served in-process (`trio_ollama.runner.inprocess`) sends every token as a JSON
frame over an in-memory stream, which costs several Trio rounds a token: too slow for an hour of
traffic. Here the engine keeps the same rules (admission at a step's start, a step's time by the
batch's size and the prompts admitted, one token a sequence a step, `Done` with the last), but
plans the steps between the moments anything can change (a sequence starts or ends, a request
arrives or leaves) and sleeps once for all of them. Each token's virtual time is kept, and the
stream hands it out as `TimedStream.at`; a consumer is woken on time only for the last token
(with `Done`) and any it asks for with `TimedStream.watch` (the first, say, if it may hang up
before it), the others come with the next of those.

The client is a `RunnerConnection` (what the scheduler and requests hold), as `RunnerClient` is,
answering in-process. It generates only (the load generator's APIs all do): no embeddings, and
none of the fake engine's test hooks (a prompt with "fail" in it, `hang_after_tokens`).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from trio_ollama.runner.client import LoadError, RunnerError, RunnerGoneError
from trio_ollama.runner.connection import CompletionEvents, RunnerConnection
from trio_ollama.runner.fake import FakeConfig, FakeEngine
from trio_ollama.runner.interface import EngineCrashed
from trio_ollama.runner.protocol import Completion, Done, Embedding, Load, Piece, Ready
from trio_ollama.scheduler import ModelSpec
from trio_ollama.scheduler.core import Startable
from trio_ollama.scheduler.devices import FakeDevices
from trio_ollama.scheduler.memory import LoadPlan
from trio_ollama.testing.simulation import fake_config, take_memory

log = logging.getLogger(__name__)
GONE = "runner process exited"  # what a client of a crashed runner process hears


@attrs.define(eq=False)
class _Job:
    id: int
    prompt: str
    limit: int
    send: trio.MemorySendChannel[object]
    watch: set[int] = attrs.field(factory=set)  # tokens the consumer needs on time
    produced: int = 0
    started: float = 0.0
    stamps: list[float] = attrs.field(factory=list)  # tokens made, not yet handed out

    def next_watch(self) -> int:
        """Tokens made when the consumer must next hear: a watched one, or the last."""
        return min([w for w in self.watch if w > self.produced] + [self.limit])


class SimulatedEngine:
    """The fake engine's cost model (`FakeConfig`), stepped in runs between events."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.parallel = 1
        self.active: dict[int, _Job] = {}
        self.waiting: deque[_Job] = deque()
        self.total_tokens = 0
        self._wake = trio.Event()
        # No step under way: the next request starts one at once, alone (as a runner starts
        # stepping when the first request reaches it; one sent at the same moment comes a
        # little later, to the next step). Decided here, not when the stepping task next
        # runs, so that Trio's order among tasks ready together decides nothing.
        self._idle = True
        self._first: int | None = None  # that step's prompt bytes, until it is planned

    async def load(self, params: Load) -> Ready:
        ready = await FakeEngine(self.config, in_process=True).load(params)
        self.parallel = ready.num_parallel
        return ready

    def submit(self, job: _Job) -> None:
        self.waiting.append(job)
        if self._idle:
            self._idle = False
            self._first = self._admit()
            self._wake.set()
        elif len(self.active) < self.parallel:  # else it waits for a sequence to end anyway
            self._wake.set()

    def cancel(self, job: _Job) -> None:
        if self.active.pop(job.id, None) is not None:
            self._wake.set()  # the batch shrinks from the next step
        elif job in self.waiting:
            self.waiting.remove(job)

    def watch(self, job: _Job, token: int) -> None:
        job.watch.add(token)
        if job.id in self.active:
            self._wake.set()

    async def decode(self) -> None:
        """Step until cancelled; `EngineCrashed` when the profile's crash comes."""
        while True:
            if self._idle:
                await self._wake.wait()
            if self._first is not None:  # a request started this step as it arrived
                admitted, self._first = self._first, None
            else:  # a step that follows another starts at once, with what came before
                admitted = self._admit()
            self._wake = trio.Event()
            if not self.active:  # everyone left
                self._idle = not self.waiting
                continue
            stamps = self._plan(admitted)
            with trio.move_on_at(stamps[-1]):
                await self._wake.wait()
            done = bisect.bisect_right(stamps, trio.current_time())
            if done < len(stamps):  # woken early: the step under way still ends as planned
                await trio.sleep_until(stamps[done])
                done += 1
            self._produce(stamps[:done])

    def _admit(self) -> int:
        admitted = 0
        now = trio.current_time()
        while self.waiting and len(self.active) < self.parallel:
            job = self.waiting.popleft()
            job.started = now
            self.active[job.id] = job
            admitted += len(job.prompt)
        return admitted

    def _plan(self, admitted: int) -> list[float]:
        """The end times of the steps until a consumer must hear or the runner crashes."""
        cfg = self.config
        n = len(self.active)
        steps = min(job.next_watch() - job.produced for job in self.active.values())
        if self.waiting and n < self.parallel:
            steps = 1  # a request that came after this step began joins the next one
        if cfg.crash_after_tokens:
            steps = min(steps, math.ceil((cfg.crash_after_tokens - self.total_tokens) / n))
        step = (1 + cfg.batch_slowdown * (n - 1)) / cfg.tokens_per_second
        # The same sums as the fake engine's sleeps, so the same times to the last bit.
        t = trio.current_time()
        first = step + (admitted / cfg.prompt_per_second if cfg.prompt_per_second else 0.0)
        stamps = [t := t + first]
        for _ in range(max(0, steps - 1)):
            stamps.append(t := t + step)
        return stamps

    def _produce(self, stamps: list[float]) -> None:
        cfg = self.config
        jobs = list(self.active.values())
        crash = cfg.crash_after_tokens
        if crash and self.total_tokens + len(stamps) * len(jobs) >= crash:
            # The crashing step's tokens never leave the process: the earlier ones did.
            for job in jobs:
                job.stamps += stamps[:-1]
                job.produced += len(stamps) - 1
                self._hand_out(job)
            raise EngineCrashed(f"crashed after {crash} tokens")
        self.total_tokens += len(stamps) * len(jobs)
        for job in jobs:
            job.stamps += stamps
            job.produced += len(stamps)
            if job.produced >= job.limit:
                del self.active[job.id]
                self._hand_out(job)
                done = Done(
                    id=job.id, done_reason="length", prompt_eval_count=len(job.prompt),
                    eval_count=job.produced, eval_duration=int((stamps[-1] - job.started) * 1e9),
                )  # fmt: skip
                job.send.send_nowait(done)
                job.send.close()
            elif job.produced in job.watch:
                self._hand_out(job)

    @staticmethod
    def _hand_out(job: _Job) -> None:
        if job.stamps:
            job.send.send_nowait(job.stamps)
            job.stamps = []


class TimedStream:
    """A completion's pieces and `Done` (`CompletionEvents`); `at` is the virtual time the last
    one was made.

    Its own iterator, not an async generator: a consumer that stops at `Done` would leave a
    generator for Trio to finalize, two more task steps a request."""

    def __init__(self, receive: trio.MemoryReceiveChannel[object], engine: SimulatedEngine,
                 job: _Job, reply: str) -> None:  # fmt: skip
        self._receive = receive
        self.done: Done | None = None
        self.at = trio.current_time()
        self._engine = engine
        self._job = job
        self._reply = reply
        self._stamps: deque[float] = deque()
        self._number = 0

    def watch(self, token: int) -> None:
        """Wake the consumer on time for the `token`-th token (counting from 1)."""
        self._engine.watch(self._job, token)

    def __aiter__(self) -> TimedStream:
        return self

    async def __anext__(self) -> Piece | Done:
        if not self._stamps:
            if self.done is not None:
                raise StopAsyncIteration
            try:
                # What is already here is taken without a schedule point: the last pieces and
                # `Done` come together, and one wake-up should serve both.
                item = self._receive.receive_nowait()
            except trio.WouldBlock:
                try:
                    item = await self._receive.receive()
                except trio.EndOfChannel:
                    raise StopAsyncIteration from None
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
            if isinstance(item, RunnerError):
                raise item
            if isinstance(item, Done):
                self.done = item
                return item
            assert isinstance(item, list)
            self._stamps.extend(item)
        self.at = self._stamps.popleft()
        self._number += 1
        return Piece(self._job.id, f"{self._reply}{self._number} ")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class DirectClient:
    """A `RunnerConnection` whose runner is a `SimulatedEngine` in this process: no frames."""

    pid: int | None = None  # no process of its own

    def __init__(self, engine: SimulatedEngine, ready: Ready) -> None:
        self.engine = engine
        self.ready: Ready | None = ready
        self.closed = trio.Event()
        self._ids = itertools.count(1)
        self._jobs: dict[int, _Job] = {}
        self.stop = trio.CancelScope()  # the engine's steps: cancelled when the runner ends

    @property
    def dead(self) -> bool:
        return self.closed.is_set()

    def gone(self) -> None:
        """The runner has ended: every open request fails, as with a process that died."""
        self.stop.cancel()
        self.closed.set()
        for job in self._jobs.values():
            job.send.send_nowait(RunnerGoneError(GONE))
            job.send.close()
        self._jobs.clear()

    @asynccontextmanager
    async def completion(self, request: Completion) -> AsyncIterator[CompletionEvents]:
        if self.dead:
            raise RunnerGoneError(GONE)
        send, receive = trio.open_memory_channel[object](math.inf)
        limit = request.sampling.num_predict
        job = _Job(next(self._ids), request.prompt, max(1, 10 if limit < 0 else limit), send)
        self._jobs[job.id] = job
        self.engine.submit(job)
        try:
            yield TimedStream(receive, self.engine, job, self.engine.config.reply)
        finally:
            if self._jobs.pop(job.id, None) is not None:
                self.engine.cancel(job)

    async def embed(self, text: str, truncate: bool = True) -> Embedding:
        raise RunnerError("the simulated runner generates only", invalid=True)

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        await trio.lowlevel.checkpoint()
        return list(text.encode())

    async def count_tokens(self, text: str, add_special: bool = True) -> int:
        return len(await self.tokenize(text, add_special))

    async def detokenize(self, tokens: list[int]) -> str:
        await trio.lowlevel.checkpoint()
        return bytes(t & 0xFF for t in tokens).decode(errors="replace")

    async def set_threads(self, n_threads: int) -> None:
        await trio.lowlevel.checkpoint()


@attrs.define
class DirectRunner:
    """`Startable`, like `RunnerProcess`: `run` returns the client once loaded, and steps the
    engine in its own task until cancelled (an unload), closed, or the engine crashes. With
    `devices`, the loaded runner's memory is taken out of their free memory until it ends."""

    load: Load
    config: FakeConfig
    devices: FakeDevices | None = None
    plan: LoadPlan | None = None  # the scheduler's placement, for the devices' accounting

    async def run(self, *, task_status: trio.TaskStatus[RunnerConnection]) -> None:
        engine = SimulatedEngine(self.config)
        try:
            ready = await engine.load(self.load)
        except Exception as exc:  # the message the runner's Fatal would carry
            raise LoadError(f"failed to load model: {exc}") from None
        if self.plan is not None and self.plan.gpus:
            ready = attrs.evolve(ready, gpu_layers=self.plan.estimate.layers)
        client = DirectClient(engine, ready)
        give_back = None
        if self.devices is not None:
            give_back = take_memory(self.devices, ready, self.plan)
        try:
            task_status.started(client)
            with client.stop:
                await engine.decode()
        except EngineCrashed as exc:
            log.warning("simulated runner crashed: %s", exc)
        finally:
            client.gone()
            if give_back is not None:
                give_back()


@attrs.define
class SimulatedRunners:
    """A runner factory for the scheduler: models made by `fake_model`, run directly."""

    devices: FakeDevices | None = None
    plans: Callable[[ModelSpec], LoadPlan | None] | None = None  # as `FakeRunners.plans`

    def __call__(self, load: Load, model: ModelSpec) -> Startable:
        plan = self.plans(model) if self.plans is not None else None
        return DirectRunner(load, fake_config(model), self.devices, plan)
