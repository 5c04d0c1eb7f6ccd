"""A fake engine with the real one's interface: configurable load time, speed, memory, failures.

For scheduler tests and the simulation. Time passes through `trio.sleep`, so an in-process fake
follows `MockClock`; in a subprocess (`--engine fake`) it runs in real time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs
import trio

from trio_ollama.runner.interface import EngineCrashed
from trio_ollama.runner.protocol import (
    Completion,
    Done,
    Embed,
    Embedding,
    Load,
    Message,
    Piece,
    Ready,
    RequestFailed,
)


def _pieces(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class FakeConfig:
    load_seconds: float = 0.0
    tokens_per_second: float = 1000.0
    weights_bytes: int = 100_000_000
    kv_bytes_per_ctx_token: int = 1000
    compute_bytes: int = 10_000_000
    fail_load: str = ""
    crash_after_tokens: int = 0  # the process exits abruptly after this many tokens in all
    hang_after_tokens: int = 0  # the engine stops making progress after this many tokens
    embedding_length: int = 8
    reply: str = "fake"
    # Scripted output: when set, these pieces are the answer (one a step), then "stop"; for
    # tests of what is made of a model's text (tool calls, thinking).
    script: tuple[str, ...] = attrs.field(default=(), converter=_pieces)
    # The answer to a request with a `format`, when set (what a grammar would have allowed).
    format_script: tuple[str, ...] = attrs.field(default=(), converter=_pieces)
    # A cost model for simulations (0: off, the tests' plain timing): prompt bytes processed a
    # second when a request is admitted, and how much longer a decode step takes for each
    # sequence beyond the first (0.1: 8 sequences make a step 1.7 times one sequence's).
    prompt_per_second: float = 0.0
    batch_slowdown: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FakeConfig:
        return cls(**data)


@attrs.define
class _Job:
    request: Completion
    produced: int = 0
    started: float = 0.0


class FakeEngine:
    def __init__(self, config: FakeConfig | None = None, *, in_process: bool = False) -> None:
        self.config = config or FakeConfig()
        self.in_process = in_process
        self.parallel = 1
        self.num_ctx = 0
        self.active: dict[int, _Job] = {}
        self.waiting: deque[Completion] = deque()
        self.embeds: deque[Embed] = deque()
        self.requests: list[Completion] = []  # every completion asked for, for tests to read
        self.total_tokens = 0
        self.n_threads = 1
        self.loaded = False
        self.closed = False

    async def load(self, params: Load) -> Ready:
        await trio.sleep(self.config.load_seconds)
        if self.config.fail_load:
            raise RuntimeError(self.config.fail_load)
        self.parallel = max(1, params.num_parallel)
        self.num_ctx = params.num_ctx
        self.n_threads = params.num_thread
        self.loaded = True
        return Ready(
            weights_bytes=self.config.weights_bytes,
            kv_bytes=self.config.kv_bytes_per_ctx_token * params.num_ctx * self.parallel,
            compute_bytes=self.config.compute_bytes,
            num_ctx=params.num_ctx,
            num_parallel=self.parallel,
            n_ctx_train=params.num_ctx,
            n_vocab=256,
            n_embd=self.config.embedding_length,
            pid=os.getpid(),
        )

    def submit(self, request: Completion) -> None:
        self.requests.append(request)
        self.waiting.append(request)

    def submit_embed(self, request: Embed) -> None:
        self.embeds.append(request)

    def cancel(self, request_id: int) -> None:
        self.active.pop(request_id, None)
        self.waiting = deque(r for r in self.waiting if r.id != request_id)

    def set_threads(self, n_threads: int) -> None:
        self.n_threads = n_threads

    @property
    def has_work(self) -> bool:
        return bool(self.active or self.waiting or self.embeds)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(text.encode())

    def detokenize(self, tokens: list[int]) -> str:
        return bytes(t & 0xFF for t in tokens).decode(errors="replace")

    def close(self) -> None:
        self.active.clear()
        self.closed = True

    async def step(self) -> list[Message]:
        cfg = self.config
        out: list[Message] = []
        admitted = 0
        while self.waiting and len(self.active) < self.parallel:
            request = self.waiting.popleft()
            self.active[request.id] = _Job(request, started=trio.current_time())
            admitted += len(request.prompt)
        while self.embeds:
            embed = self.embeds.popleft()
            vector = [float(len(embed.text) % 7 + i) for i in range(cfg.embedding_length)]
            out.append(Embedding(id=embed.id, embedding=vector, prompt_eval_count=len(embed.text)))
        if not self.active:
            return out
        if cfg.hang_after_tokens and self.total_tokens >= cfg.hang_after_tokens:
            await trio.sleep_forever()
        step = (1 + cfg.batch_slowdown * (len(self.active) - 1)) / cfg.tokens_per_second
        if cfg.prompt_per_second:
            step += admitted / cfg.prompt_per_second
        await trio.sleep(step)
        for job in list(self.active.values()):
            job.produced += 1
            self.total_tokens += 1
            if cfg.crash_after_tokens and self.total_tokens >= cfg.crash_after_tokens:
                if self.in_process:
                    raise EngineCrashed(f"crashed after {self.total_tokens} tokens")
                os._exit(17)
            limit = job.request.sampling.num_predict
            script = cfg.format_script if job.request.format and cfg.format_script else cfg.script
            limit = (len(script) or 10) if limit < 0 else limit
            if "fail" in job.request.prompt:
                out.append(RequestFailed(id=job.request.id, message="fake failure"))
                del self.active[job.request.id]
                continue
            scripted = bool(script)
            text = script[job.produced - 1] if scripted else f"{cfg.reply}{job.produced} "
            out.append(Piece(job.request.id, text, _fake_logprobs(job.request, text)))
            stopped = scripted and job.produced >= len(script)
            if job.produced >= limit or stopped:
                out.append(
                    Done(
                        id=job.request.id,
                        done_reason="stop" if stopped else "length",
                        prompt_eval_count=len(job.request.prompt),
                        eval_count=job.produced,
                        eval_duration=int((trio.current_time() - job.started) * 1e9),
                    )
                )
                del self.active[job.request.id]
        return out


def _fake_logprobs(request: Completion, text: str) -> list[dict[str, Any]]:
    """One made-up entry per piece, in the runner's shape: the piece is the likeliest token."""
    if not request.logprobs:
        return []

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    out = entry(text, -0.25)
    if request.top_logprobs:
        out["top_logprobs"] = [entry(text, -0.25)] + [
            entry(f"alt{i}", -1.0 - i) for i in range(1, request.top_logprobs)
        ]
    return [out]
