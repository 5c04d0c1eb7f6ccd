"""The native API's work, independent of HTTP: each method takes a parsed request and returns
a JSON object, or streams JSON chunks as a `trio.as_safe_channel` (`async with
service.chat(req) as chunks`), so that a stream's work always ends with the block that reads it.
Routes (`app.py`) and the OpenAI layer both call it.

Blocking store work runs in threads; model access goes through the scheduler, whose `acquire`
scope is held for as long as a response streams, so a client that hangs up frees its slot.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import attrs
import trio

from trio_ollama.api import records
from trio_ollama.api.errors import APIError, runner_error, scheduler_error, store_error
from trio_ollama.api.metrics import Metrics
from trio_ollama.api.schemas import (
    ChatMessage,
    ChatRequest,
    CopyRequest,
    CreateJSON,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    PullRequest,
    PushRequest,
    ShowRequest,
)
from trio_ollama.api.timefmt import FOREVER_SECONDS, local_time, utc_now
from trio_ollama.config import Settings
from trio_ollama.gguf_info import ArraySummary, GGUFError, read_gguf_info
from trio_ollama.gocompat.gojson import quote as go_quote
from trio_ollama.names import InvalidNameError, ModelName, parse_name
from trio_ollama.options import LOAD_OPTIONS, PREDICT_OPTIONS, check_option, defaults
from trio_ollama.parsers import OutputParser, Parsed, ParseError
from trio_ollama.prompt import CACHED_TEMPLATE_BYTES, ModelPrompt, PromptError, fit_history
from trio_ollama.registry import (
    Downloads,
    RegistryError,
    TransferOptions,
    pull_model,
    push_model,
)
from trio_ollama.registry.client import InsecureProtocolError
from trio_ollama.runner.client import RunnerError
from trio_ollama.runner.connection import CompletionEvents, RunnerConnection
from trio_ollama.runner.grammar import format_problem
from trio_ollama.runner.protocol import Completion, Done, Piece, Sampling
from trio_ollama.runner.window import MARGIN, cut, shorten, surely_longer
from trio_ollama.scheduler import (
    Lease,
    ModelSpec,
    Runner,
    RunnerOptions,
    Scheduler,
    SchedulerError,
)
from trio_ollama.specs import NoWeightsError, embedding_only, model_spec
from trio_ollama.store import (
    CorruptModelError,
    ModelDetails,
    ModelNotFoundError,
    Store,
    StoreError,
)
from trio_ollama.store.layout import InvalidDigestError, normalize_digest
from trio_ollama.templates import Message
from trio_ollama.version import __version__

log = logging.getLogger(__name__)
_T = TypeVar("_T")
Chunks = trio.abc.ReceiveChannel[dict[str, Any]]
Progress = trio.MemorySendChannel[dict[str, Any]]


@contextmanager
def _prompt_errors() -> Iterator[None]:
    try:
        yield
    except PromptError as exc:
        raise APIError(400 if exc.invalid else 500, str(exc)) from exc


def _fit_context(context: Sequence[int], options: dict[str, Any], num_ctx: int) -> list[int]:
    """A `context` longer than the context window, cut as the runner would cut the prompt (the
    first `num_keep` tokens and the most recent ones), before it travels at all."""
    return cut(list(context), num_ctx, int(options["num_keep"]))


def metrics(done: Done, total: float, load: float) -> dict[str, int]:
    """Ollama's Metrics, in nanoseconds, zero values left out (they are omitempty)."""
    values = {
        "total_duration": int(total * 1e9),
        "load_duration": int(load * 1e9),
        "prompt_eval_count": done.prompt_eval_count,
        "prompt_eval_duration": done.prompt_eval_duration,
        "eval_count": done.eval_count,
        "eval_duration": done.eval_duration,
    }
    return {k: v for k, v in values.items() if v}


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


def _embedding_options(
    spec: ModelSpec, details: ModelDetails, request: dict[str, Any], default_ctx: int
) -> dict[str, Any]:
    """`merge_options`, where `num_ctx: 0` means the model's own context (Ollama's rule for
    embeddings; a completion raises 0 to the runner's minimum instead)."""
    options = merge_options(details, request, default_ctx)
    if options["num_ctx"] == 0 and spec.info.context_length > 0:
        options["num_ctx"] = spec.info.context_length
    return options


async def _fit_embedding_input(
    runner: RunnerConnection, spec: ModelSpec, options: dict[str, Any], text: str, truncate: bool
) -> str:
    """Ollama's rule for an embedding input longer than `min(num_ctx, the model's context)`:
    refused without `truncate`; else cut, keeping room for a BOS and an EOS the tokenizer did
    not add (reference §1.5), and refused if nothing is left."""
    info = spec.info
    window = info.context_length or options["num_ctx"]
    if options["num_ctx"] > 0:
        window = min(options["num_ctx"], window)
    bound = _window_of(runner)[1]
    if surely_longer(len(text), window + MARGIN, bound):
        text = text[: (window + MARGIN) * bound]  # only its start can be kept
    tokens = await runner.tokenize(text, add_special=False)
    if len(tokens) <= window:
        return text
    if not truncate:
        raise APIError(400, "input exceeds maximum context length")
    # As Ollama reads them: the ids from `tokenizer.ggml.*` (0 when absent), and the "add" flags
    # under the architecture's prefix (`llama.add_bos_token`), which models rarely have: true.
    limit = window
    if tokens[0] != info.get("tokenizer.ggml.bos_token_id", 0) and info.arch_get(
        "add_bos_token", True
    ):
        limit -= 1
    if tokens[-1] != info.get("tokenizer.ggml.eos_token_id", 0) and info.arch_get(
        "add_eos_token", True
    ):
        limit -= 1
    if limit <= 0:
        raise APIError(400, "input after truncation exceeds maximum context length")
    return await runner.detokenize(tokens[:limit])


def sampling_of(options: dict[str, Any]) -> Sampling:
    return Sampling(**{k: options[k] for k in PREDICT_OPTIONS})


def runner_options_of(options: dict[str, Any]) -> RunnerOptions:
    return RunnerOptions(**{k: options[k] for k in LOAD_OPTIONS})


@attrs.define
class _TokenClock:
    """One generation's timing and counts, for the metrics and the request's log line.

    Times are taken as each piece of text is handed to the response, so they are what the
    client sees (a client that reads slowly widens the gaps). A piece is usually one token;
    text held back while it might start a stop sequence comes out as one piece.
    """

    metrics: Metrics
    model: str
    started: float
    last: float | None = None

    @classmethod
    def start(cls, metrics: Metrics, model: str, started: float) -> _TokenClock:
        """From the request's arrival when there is one (its body's reading included)."""
        record = records.current()
        return cls(metrics, model, record.started if record is not None else started)

    def piece(self) -> None:
        now = trio.current_time()
        if self.last is None:
            self.metrics.first_token(self.model, now - self.started)
        else:
            self.metrics.between_tokens(self.model, now - self.last)
        self.last = now

    def done(self, done: Done) -> None:
        self.metrics.generated(
            self.model, done.prompt_eval_count, done.prompt_cached, done.eval_count
        )
        record = records.current()
        if record is not None:
            record.prompt_tokens = done.prompt_eval_count
            record.generated_tokens = done.eval_count


@attrs.define
class _ChatRun:
    """One chat answer across its runs: two when a thinking model answers under a format."""

    parser: OutputParser
    two_pass: bool
    clock: _TokenClock
    thought: str = ""
    restart: bool = False


@attrs.define
class Service:
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

    # ----- helpers

    async def _thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await trio.to_thread.run_sync(fn, *args)

    async def prompt_of(self, details: ModelDetails, template: str | None = None) -> ModelPrompt:
        """`ModelPrompt.of(details, template)`; a request's own template is parsed anew."""
        key = (str(details.name), details.digest)
        found = self._prompts.get(key) if template is None else None
        if found is None:
            with _prompt_errors():
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

    async def preload(self, name: str) -> None:
        """Load `name` in the background, with its Modelfile's options, and keep it loaded
        through crashes (`preload` in the configuration file). A model that cannot be found or
        read is logged, and the server goes on without it."""
        try:
            details = await self.details(name, not_found="model '{name}' not found")
            spec = await self.spec(details)
        except APIError as exc:
            log.error("cannot preload model", extra={"model": name, "error": exc.message})
            return
        except Exception:  # an unreadable store must not stop the server starting
            log.exception("cannot preload model", extra={"model": name})
            return
        options = merge_options(details, {}, self.settings.context_length)
        self.scheduler.keep_loaded(spec, runner_options_of(options))

    # ----- generate and chat

    @trio.as_safe_channel
    async def generate(self, req: GenerateRequest) -> AsyncGenerator[dict[str, Any], None]:
        started = trio.current_time()
        if not req.model or not parse_name(req.model).is_valid:
            raise APIError(404, f"model '{req.model}' not found")
        details = await self.details(req.model, not_found="model '{name}' not found")
        if req.prompt == "" and req.keep_alive == 0:
            self.scheduler.expire_model(await self.spec(details))
            yield {"model": req.model, "created_at": utc_now(), "response": "", "done": True,
                   "done_reason": "unload"}  # fmt: skip
            return
        _check_top_logprobs(req.top_logprobs)
        if problem := format_problem(req.format):  # before a runner is leased for it
            raise APIError(400, problem)
        if req.raw and (req.template is not None or req.system is not None or req.context):
            raise APIError(400, "raw mode does not support template, system, or context")
        model = await self.prompt_of(details, req.template)  # parsed off the event loop
        caps = model.capabilities
        if "completion" not in caps:
            raise APIError(400, f'"{req.model}" does not support generate')
        if req.suffix and "insert" not in caps:
            raise APIError(400, f"{details.name} does not support insert")
        think = self._check_think(req.model, req.think, caps)
        _check_images(bool(req.images), caps)
        req = attrs.evolve(req, think=think)
        if req.debug_render_only:
            with _prompt_errors():
                text = await trio.to_thread.run_sync(self._generate_text, req, model)
            yield _debug_render(req.model, text)
            return
        spec = await self.spec(details)
        options = merge_options(details, req.options, self.settings.context_length)
        async with self._leased(spec, options, req.keep_alive, req.priority) as lease:
            if req.prompt == "" and not req.suffix:
                yield {"model": req.model, "created_at": utc_now(), "response": "", "done": True,
                       "done_reason": "load"}  # fmt: skip
                return
            runner = lease.runner
            prefix = ""
            if req.context:
                prefix = await runner.detokenize(_fit_context(req.context, options, lease.num_ctx))
            with _prompt_errors():
                if req.raw:
                    prompt = req.prompt  # nothing to render: no trip to a worker thread
                elif req.suffix:
                    prompt = await trio.to_thread.run_sync(self._generate_text, req, model)
                else:
                    prompt = await fit_history(
                        model, self._generate_messages(req, model), num_ctx=lease.num_ctx,
                        tokenize=runner.count_tokens, truncate=req.truncate, think=req.think,
                        max_token_bytes=_window_of(runner)[1],
                    )  # fmt: skip
            prompt = prefix + prompt
            text = ""
            # Generate parses thinking only (tool calls are for chat); a raw prompt skips the
            # model's built-in parser but not the template's thinking tags (Ollama's rule).
            parser = model.output_parser(prompt, think=think, raw=req.raw)
            completion = self._completion(runner, prompt, options, req)
            clock = _TokenClock.start(self.metrics, spec.name, started)
            async with completion as events:
                async for chunk in events:
                    if isinstance(chunk, Piece):
                        clock.piece()
                        text += chunk.text
                        for parsed, logprobs in _with_logprobs(
                            _parse(parser, chunk.text), chunk.logprobs
                        ):
                            yield {"model": req.model, "created_at": utc_now(),
                                   **_generate_text_fields(parsed), "done": False,
                                   **logprobs}  # fmt: skip
                    else:
                        # A built-in parser's calls reach generate only at the end (Ollama's).
                        flushed = _parse(parser, "", done=True) if parser.builtin else []
                        last = flushed[-1] if flushed else Parsed()
                        final: dict[str, Any] = {
                            "model": req.model, "created_at": utc_now(),
                            **_generate_text_fields(last),
                            "done": True, "done_reason": chunk.done_reason,
                        }  # fmt: skip
                        clock.done(chunk)
                        if not req.raw:
                            final["context"] = await _context_of(runner, prompt + text, options)
                        final.update(metrics(chunk, trio.current_time() - started,
                                             lease.load_duration))  # fmt: skip
                        if last.tool_calls:
                            final["tool_calls"] = [c.go_json() for c in last.tool_calls]
                        yield final

    @trio.as_safe_channel
    async def chat(self, req: ChatRequest) -> AsyncGenerator[dict[str, Any], None]:
        started = trio.current_time()
        if not req.model or not parse_name(req.model).is_valid:
            raise APIError(400, "model is required")
        details = await self.details(req.model, not_found="model '{name}' not found")
        _check_top_logprobs(req.top_logprobs)
        if problem := format_problem(req.format):  # before a runner is leased for it
            raise APIError(400, problem)
        empty = {"role": "assistant", "content": ""}
        if not req.messages and req.keep_alive == 0:
            self.scheduler.expire_model(await self.spec(details))
            yield {"model": req.model, "created_at": utc_now(), "message": empty, "done": True,
                   "done_reason": "unload"}  # fmt: skip
            return
        model = await self.prompt_of(details)
        caps = model.capabilities
        if "completion" not in caps:
            raise APIError(400, f'"{req.model}" does not support chat')
        if req.tools and "tools" not in caps:
            raise APIError(400, f"{details.name} does not support tools")
        think = self._check_think(req.model, req.think, caps)
        _check_images(any(m.images for m in req.messages), caps)
        msgs = model.conversation([_message(m) for m in req.messages], with_model_messages=True)
        msgs = model.drop_old_thinking(msgs, details.name.model)
        if req.debug_render_only:
            with _prompt_errors():
                text = await trio.to_thread.run_sync(
                    functools.partial(model.render, msgs, tools=req.tools or None, think=think)
                )
            yield _debug_render(req.model, text)
            return
        spec = await self.spec(details)
        options = merge_options(details, req.options, self.settings.context_length)
        async with self._leased(spec, options, req.keep_alive, req.priority) as lease:
            if not req.messages:
                yield {"model": req.model, "created_at": utc_now(), "message": empty,
                       "done": True, "done_reason": "load"}  # fmt: skip
                return
            runner = lease.runner
            with _prompt_errors():
                prompt = await fit_history(
                    model, msgs, num_ctx=lease.num_ctx, tokenize=runner.count_tokens,
                    truncate=req.truncate, tools=req.tools or None, think=think,
                    max_token_bytes=_window_of(runner)[1],
                )  # fmt: skip
            parser = model.output_parser(prompt, think=think, tools=req.tools)
            # Ollama's structured output for a model that thinks: it thinks free of the format;
            # when its answer begins, that run stops and a second one answers under the format,
            # the thinking so far handed back as an assistant message.
            run = _ChatRun(
                parser, bool(req.format) and "thinking" in caps
                and (parser.thinking is not None or parser.builtin is not None),
                _TokenClock.start(self.metrics, spec.name, started),
            )  # fmt: skip
            while True:
                one_run = self._chat_run(run, runner, prompt, options, req, lease, started)
                async with aclosing(one_run) as chunks:
                    async for out in chunks:
                        yield out
                if not run.restart:
                    return
                msgs = [*msgs, Message(role="assistant", thinking=run.thought)]
                with _prompt_errors():
                    prompt = await fit_history(
                        model, msgs, num_ctx=lease.num_ctx, tokenize=runner.count_tokens,
                        truncate=req.truncate, tools=req.tools or None, think=think,
                        max_token_bytes=_window_of(runner)[1],
                    )  # fmt: skip

    async def _chat_run(
        self,
        run: _ChatRun,
        runner: RunnerConnection,
        prompt: str,
        options: dict[str, Any],
        req: ChatRequest,
        lease: Lease,
        started: float,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """One completion's chunks. In the first run of two it stops where the answer begins
        (`run.restart`); the next runs under the format."""
        first_of_two = run.two_pass and not run.restart
        fmt = "" if first_of_two else req.format
        run.restart = False
        async with (
            self._completion(runner, prompt, options, req, fmt) as events,
            aclosing(events) as stream,
        ):
            async for chunk in stream:
                if isinstance(chunk, Done):
                    run.clock.done(chunk)
                    # What the parsers held back that was no call after all ends the answer.
                    *rest, last = [*_parse(run.parser, "", done=True), Parsed()]
                    for parsed in rest:
                        yield {"model": req.model, "created_at": utc_now(),
                               "message": _chat_message(parsed), "done": False}  # fmt: skip
                    final = {"model": req.model, "created_at": utc_now(),
                             "message": _chat_message(last), "done": True,
                             "done_reason": chunk.done_reason}  # fmt: skip
                    final.update(metrics(chunk, trio.current_time() - started,
                                         lease.load_duration))  # fmt: skip
                    yield final
                    return
                run.clock.piece()
                for parsed, logprobs in _with_logprobs(
                    _parse(run.parser, chunk.text), chunk.logprobs
                ):
                    if first_of_two and run.thought + parsed.thinking and parsed.content:
                        parsed, run.restart = Parsed(thinking=parsed.thinking), True
                    run.thought += parsed.thinking
                    yield {"model": req.model, "created_at": utc_now(),
                           "message": _chat_message(parsed), "done": False,
                           **logprobs}  # fmt: skip
                    if run.restart:
                        return

    @staticmethod
    def _generate_messages(req: GenerateRequest, model: ModelPrompt) -> list[Message]:
        """Ollama: the request's system (else the model's), the model's MESSAGEs (unless a
        `context` continues a conversation), then the prompt as a user message."""
        user = Message(role="user", content=req.prompt)
        if req.system is not None:
            history = [] if req.context else list(model.messages)
            return [Message(role="system", content=req.system), *history, user]
        return model.conversation([user], with_model_messages=not req.context)

    def _generate_text(self, req: GenerateRequest, model: ModelPrompt) -> str:
        """The whole prompt, untruncated: raw, fill-in-the-middle, or rendered messages."""
        if req.raw:
            return str(req.prompt)
        if req.suffix:
            return model.render_suffix(req.prompt, req.suffix)
        return model.render(self._generate_messages(req, model), think=req.think)

    def _check_think(
        self, model: str, think: bool | str | None, caps: list[str]
    ) -> bool | str | None:
        """The request's `think` as Ollama reads it: a thinking model thinks unless told not
        to; any other refuses a request to think (a level asks to think too)."""
        if "thinking" in caps:
            return True if think is None else think
        if think is True or isinstance(think, str):
            raise APIError(400, f'"{model}" does not support thinking')
        return think

    @asynccontextmanager
    async def _completion(
        self,
        runner: RunnerConnection,
        prompt: str,
        options: dict[str, Any],
        req: GenerateRequest | ChatRequest,
        fmt: str | None = None,
    ) -> AsyncIterator[CompletionEvents]:
        """The runner's stream for one completion (its refusals become API errors in `_leased`);
        `fmt` stands in for the request's `format` when given."""
        # A prompt that surely overflows the window travels without the middle no cut keeps.
        num_ctx, bound = _window_of(runner)
        prompt = shorten(
            prompt, n_ctx=num_ctx, num_keep=int(options["num_keep"]), max_token_bytes=bound
        )
        request = Completion(
            id=0, prompt=prompt, sampling=sampling_of(options),
            format=req.format if fmt is None else fmt,
            truncate=req.truncate, shift=req.shift, logprobs=req.logprobs,
            top_logprobs=req.top_logprobs if req.logprobs else 0,
        )  # fmt: skip
        async with runner.completion(request) as stream:
            yield stream

    # ----- embeddings

    async def embed(self, req: EmbedRequest) -> dict[str, Any]:
        started = trio.current_time()
        not_found = 'model "{name}" not found, try pulling it first'
        if not req.model or not parse_name(req.model).is_valid:
            raise APIError(404, not_found.format(name=req.model))
        details = await self.details(req.model, not_found=not_found)
        spec = await self.spec(details)
        inputs = list(req.input)
        options = _embedding_options(spec, details, req.options, self.settings.context_length)
        async with self._leased(spec, options, req.keep_alive) as lease:
            if not inputs or inputs == [""]:
                return {"model": req.model, "embeddings": []}
            vectors: list[list[float]] = []
            count = 0
            for text in inputs:
                text = await _fit_embedding_input(lease.runner, spec, options, text, req.truncate)
                try:
                    result = await lease.runner.embed(text, truncate=req.truncate)
                except RunnerError as exc:
                    if exc.invalid:  # Ollama's text for embeddings; other refusals as usual
                        raise APIError(400, "input exceeds maximum context length") from exc
                    raise
                count += result.prompt_eval_count
                vectors.append(_normalize(result.embedding, req.dimensions))
            load = lease.load_duration
        self._embedded(spec.name, count)
        out: dict[str, Any] = {"model": req.model, "embeddings": vectors}
        out["total_duration"] = int((trio.current_time() - started) * 1e9)
        if load:
            out["load_duration"] = int(load * 1e9)
        if count:
            out["prompt_eval_count"] = count
        return out

    async def embeddings(self, req: EmbeddingsRequest) -> dict[str, Any]:
        if not req.model or not parse_name(req.model).is_valid:
            raise APIError(400, "model is required")
        details = await self.details(
            req.model, not_found='model "{name}" not found, try pulling it first'
        )
        spec = await self.spec(details)
        options = _embedding_options(spec, details, req.options, self.settings.context_length)
        async with self._leased(spec, options, req.keep_alive) as lease:
            if not req.prompt:
                return {"embedding": []}
            result = await lease.runner.embed(req.prompt)
        self._embedded(spec.name, result.prompt_eval_count)
        return {"embedding": result.embedding}

    def _embedded(self, model: str, prompt_tokens: int) -> None:
        self.metrics.generated(model, prompt_tokens, 0, 0)
        record = records.current()
        if record is not None:
            record.prompt_tokens = prompt_tokens

    # ----- the store

    async def tags(self) -> dict[str, Any]:
        entries = await self._thread(self.store.list)
        return {
            "models": [
                {
                    "name": e.name.display_shortest,
                    "model": e.name.display_shortest,
                    "modified_at": local_time(e.modified_at),
                    "size": e.size,
                    "digest": e.digest,
                    "details": e.config.details(),
                }
                for e in entries
            ]
        }

    async def show(self, req: ShowRequest) -> dict[str, Any]:
        if not req.model:
            raise APIError(400, "model is required")
        details = await self.details(req.model, not_found="model '{name}' not found")
        model = await self.prompt_of(details)  # kept from before, or parsed in a worker thread
        out: dict[str, Any] = {}
        if details.license:
            out["license"] = "\n".join(details.license)
        out["modelfile"] = details.modelfile()
        params = format_parameters(details.parameters)
        if params:
            out["parameters"] = params
        template = details.template if details.template is not None else model.jinja
        if template:
            out["template"] = template
        system = req.system or details.system
        if system:
            out["system"] = system
        out["details"] = details.config.details()
        if details.messages:
            out["messages"] = [m.to_json() for m in details.messages]
        out["model_info"] = await self._thread(_model_info, details, req.verbose)
        if req.verbose and details.model_path is not None:
            info = details.gguf
            assert info is not None
            out["tensors"] = [
                {"name": t.name, "type": t.ggml_type, "shape": list(t.shape)} for t in info.tensors
            ]
        out["capabilities"] = model.capabilities
        out["modified_at"] = local_time(details.modified_at)
        if details.gguf is not None:
            out["policy"] = self._policy(
                details.name.display_shortest, embedding_only(details.gguf)
            )
        return out

    async def ps(self) -> dict[str, Any]:
        now_wall, now_trio = time.time(), trio.current_time()
        models = []
        for runner in self.scheduler.running():
            expires = runner.expires_at
            if math.isinf(expires):
                remaining = runner.keep_alive if math.isfinite(runner.keep_alive) else None
                wall = now_wall + (FOREVER_SECONDS if remaining is None else remaining)
            else:
                wall = now_wall + (expires - now_trio)
            models.append(
                {
                    "name": runner.model.name,
                    "model": runner.model.name,
                    "size": runner.size,
                    "digest": runner.model.digest,
                    "details": runner.model.details,
                    "expires_at": local_time(wall),
                    "size_vram": runner.vram_size,
                    "context_length": runner.num_ctx,
                    # Beyond Ollama's fields (its clients ignore them): the queue, per model.
                    "requests_running": runner.refcount,
                    "requests_waiting": self.scheduler.waiting_by_key.get(runner.model.key, 0),
                    "num_parallel": runner.num_parallel,
                    "policy": self._policy(runner.model.name, runner.model.embedding_only, runner),
                }
            )
        return {"models": models}

    def _policy(
        self, name: str, embedding_only: bool, runner: Runner | None = None
    ) -> dict[str, Any]:
        """The scheduling settings that apply to model `name` (docs/policies.md), as a loaded
        `runner` has them. Keep-alive in seconds, -1 for ever."""
        applies = self.scheduler.effective_policy(name, embedding_only)
        if runner is not None:
            applies = attrs.evolve(
                applies,
                num_parallel=runner.num_parallel,
                keep_alive=runner.keep_alive,
                pinned=runner.pinned,
            )
        out = attrs.asdict(applies)
        if out["keep_alive"] is not None and math.isinf(out["keep_alive"]):
            out["keep_alive"] = -1
        return out

    async def copy(self, req: CopyRequest) -> None:
        source, destination = req.source, req.destination
        if not parse_name(source).is_valid:
            raise APIError(400, f'source "{source}" is invalid')
        if not parse_name(destination).is_valid:
            raise APIError(400, f'destination "{destination}" is invalid')
        try:
            copied = await self._thread(self.store.copy, source, destination)
        except ModelNotFoundError:
            raise APIError(404, f'model "{source}" not found') from None
        except StoreError as exc:
            raise store_error(exc) from exc
        self.metrics.created(copied.display_shortest)

    async def delete(self, req: DeleteRequest) -> None:
        if not parse_name(req.model).is_valid:
            raise APIError(400, f'name "{req.model}" is invalid')

        def remove() -> ModelName:
            found = self.store.resolve(req.model)  # as stored: the name its series carry
            self.store.delete(found)
            return found

        try:
            removed = await self._thread(remove)
        except ModelNotFoundError:
            raise APIError(404, f"model '{req.model}' not found") from None
        except StoreError as exc:
            raise store_error(exc) from exc
        self.metrics.deleted(removed.display_shortest)

    async def blob_exists(self, digest: str) -> bool:
        try:
            normalize_digest(digest)
        except InvalidDigestError:
            raise APIError(400, "invalid digest format") from None
        return await self._thread(self.store.has_blob, digest)

    @trio.as_safe_channel
    async def create(self, req: CreateJSON) -> AsyncGenerator[dict[str, Any], None]:
        name: ModelName = parse_name(req.model)
        if not name.is_valid:
            raise APIError(400, "invalid model name")
        request = req.to_store_request()
        statuses: list[str] = []
        # The work runs to its end in a thread, then its statuses go out: a yield inside a
        # nursery (to stream them live) would break if the client left half-way. Blobs are
        # uploaded beforehand, so a create takes milliseconds.
        try:
            await self._thread(self.store.create, name, request, statuses.append)
        except StoreError as exc:
            if not statuses:
                raise store_error(exc) from exc
            failure: APIError | None = store_error(exc)
        except (GGUFError, ValueError) as exc:
            if not statuses:
                raise APIError(400, str(exc)) from exc
            failure = APIError(400, str(exc))
        else:
            failure = None
            self.metrics.created(name.display_shortest)
        for status in statuses:
            yield {"status": status}
        if failure is not None:
            raise failure

    # ----- registry

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

    def version(self) -> dict[str, str]:
        return {"version": __version__}


# What a model without vision answers an image with, in llama.cpp's words (Ollama's current
# runner passes them on; v0.12.10 dropped the image without a word). A 400 here, not a 500:
# the request is at fault.
NO_VISION = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
# A model with a projector could see, but the runner does not load projectors yet.
VISION_NOT_SERVED = "image input is not supported by this server yet (docs/vision.md)"


_REMEMBERED = 64  # models' prompts and specs kept, the least recently stored dropped first


def _window_of(runner: RunnerConnection) -> tuple[int, int]:
    """The runner's context window and the most bytes of text one of its tokens stands for
    (0: unknown), the bound `runner.window` cuts by."""
    ready = runner.ready
    return (ready.num_ctx, ready.max_token_bytes) if ready is not None else (0, 0)


async def _context_of(runner: RunnerConnection, text: str, options: dict[str, Any]) -> list[int]:
    """Generate's `context`: the tokens of the prompt and the answer, as Ollama returns them;
    for a prompt that overflowed the window, the tokens the window kept (the next request
    would cut the rest anyway), tokenized from its two ends only."""
    (num_ctx, bound), num_keep = _window_of(runner), int(options["num_keep"])
    short = shorten(text, n_ctx=num_ctx, num_keep=num_keep, max_token_bytes=bound)
    tokens = await runner.tokenize(short)
    return tokens if short is text else cut(tokens, num_ctx, num_keep)


def _remember(cache: dict[tuple[str, str], _T], key: tuple[str, str], value: _T) -> None:
    cache[key] = value
    while len(cache) > _REMEMBERED:
        del cache[next(iter(cache))]


def _check_images(has_images: bool, caps: list[str]) -> None:
    if has_images:
        raise APIError(400, NO_VISION if "vision" not in caps else VISION_NOT_SERVED)


def _check_top_logprobs(top: int) -> None:
    if not 0 <= top <= 20:
        raise APIError(400, "top_logprobs must be between 0 and 20")


def _debug_render(model: str, prompt: str) -> dict[str, Any]:
    """`_debug_render_only`: the prompt the model would have read, and nothing run."""
    return {
        "model": model,
        "created_at": utc_now(),
        "response": "",
        "done": True,
        "_debug_info": {"rendered_template": prompt, "image_count": 0},
    }


def _chat_message(parsed: Parsed) -> dict[str, Any]:
    """A chunk's `message`, in the field order of Ollama's `api.Message`."""
    out: dict[str, Any] = {"role": "assistant", "content": parsed.content}
    if parsed.thinking:
        out["thinking"] = parsed.thinking
    if parsed.tool_calls:
        out["tool_calls"] = [c.go_json() for c in parsed.tool_calls]
    return out


def _parse(parser: OutputParser, text: str, *, done: bool = False) -> list[Parsed]:
    """The chunks a piece of output makes; a call a built-in parser cannot read ends the
    stream with an error, as in Ollama."""
    if not parser.active:
        return [Parsed(text)] if text else []
    try:
        return parser.add(text, done=done)
    except ParseError as exc:
        raise APIError(500, str(exc)) from exc


def _with_logprobs(
    pieces: list[Parsed], logprobs: list[dict[str, Any]]
) -> Iterator[tuple[Parsed, dict[str, Any]]]:
    """Each chunk a runner piece became, the first with the piece's logprobs; a piece the
    parsers hold back still sends its logprobs, in a chunk of no text (as Ollama does)."""
    if logprobs and not pieces:
        pieces = [Parsed()]
    for i, parsed in enumerate(pieces):
        yield parsed, {"logprobs": logprobs} if logprobs and i == 0 else {}


def _generate_text_fields(parsed: Parsed) -> dict[str, Any]:
    out: dict[str, Any] = {"response": parsed.content}
    if parsed.thinking:
        out["thinking"] = parsed.thinking
    return out


def _message(m: ChatMessage) -> Message:
    return Message.from_json(m.to_json())


def _normalize(vector: list[float], dimensions: int | None) -> list[float]:
    def unit(v: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in v))
        return [x / max(norm, 1e-12) for x in v]

    v = unit(vector)
    if dimensions and 0 < dimensions < len(v):
        v = unit(v[:dimensions])
    return v


def format_parameters(params: dict[str, Any]) -> str:
    """`/api/show`'s parameters: `%-30s %#v` per value, one line per stop string."""
    lines = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {_go_value(v)}")
    return "\n".join(lines)


def _go_value(value: Any) -> str:
    """Go's `%#v` of a value `encoding/json` decoded into `any` (a params layer holds any)."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(map(_go_value, value)) + "}"
    if isinstance(value, dict):
        items = (f"{go_quote(k)}:{_go_value(v)}" for k, v in sorted(value.items()))
        return "map[string]interface {}{" + ", ".join(items) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _model_info(details: ModelDetails, verbose: bool) -> dict[str, Any]:
    if details.model_path is None:
        return {}
    info = details.gguf if not verbose else read_gguf_info(details.model_path, array_limit=None)
    assert info is not None
    out: dict[str, Any] = {}
    for key, value in sorted(info.metadata.items()):
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        if isinstance(value, ArraySummary) or (isinstance(value, list) and len(value) > 5):
            value = value if verbose and isinstance(value, list) else []
        out[key] = value
    out["general.parameter_count"] = info.parameter_count
    return out
