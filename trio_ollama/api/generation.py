"""Generate and chat: a prompt made from a stored model and the request, a runner leased for
it, and the runner's pieces parsed (thinking, tool calls) into Ollama's chunks.

Each is a `trio.as_safe_channel` (`async with service.chat(req) as chunks`), so that a stream's
work always ends with the block that reads it.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

import attrs
import trio

from trio_ollama.api import records
from trio_ollama.api.access import (
    ModelAccess,
    merge_options,
    prompt_errors,
    window_of,
)
from trio_ollama.api.errors import APIError
from trio_ollama.api.metrics import Metrics
from trio_ollama.api.schemas import ChatRequest, GenerateRequest
from trio_ollama.api.timefmt import utc_now
from trio_ollama.images import check_images
from trio_ollama.names import parse_name
from trio_ollama.options import PREDICT_OPTIONS
from trio_ollama.parsers import OutputParser, Parsed, ParseError
from trio_ollama.prompt import FittedPrompt, ModelPrompt, fit_prompt, tag_images
from trio_ollama.runner.connection import CompletionEvents, RunnerConnection
from trio_ollama.runner.grammar import format_problem
from trio_ollama.runner.protocol import Completion, Done, Piece, Sampling
from trio_ollama.runner.window import cut, shorten
from trio_ollama.scheduler import Lease, ModelSpec
from trio_ollama.store import ModelDetails
from trio_ollama.templates import Message

# What a model without vision answers an image with, in llama.cpp's words (Ollama's current
# runner passes them on; v0.12.10 dropped the image without a word). A 400 here, not a 500:
# the request is at fault.
NO_VISION = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
# A model whose own weights see (a `vision.block_count` key, no projector): Ollama's Go engine
# runs those; llama.cpp, which this server runs, needs a projector (docs/vision.md).
VISION_NOT_SERVED = (
    "image input is not supported for vision built into the weights; import the model's "
    "projector (mmproj) with it (docs/vision.md)"
)
MLLAMA_ONE_IMAGE = "this model only supports one image while more than one image requested"


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


def sampling_of(options: dict[str, Any]) -> Sampling:
    return Sampling(**{k: options[k] for k in PREDICT_OPTIONS})


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


@attrs.frozen
class _Slot:
    """What a request holds once it has a runner: the model's spec, the merged options, and
    the lease."""

    spec: ModelSpec
    options: dict[str, Any]
    lease: Lease


@attrs.define
class Generation(ModelAccess):
    # ----- what generate and chat share

    async def _model_for(
        self, req: GenerateRequest | ChatRequest, invalid: APIError
    ) -> ModelDetails:
        """The stored model a request names; `invalid` answers a name that cannot be one."""
        if not req.model or not parse_name(req.model).is_valid:
            raise invalid
        return await self.details(req.model, not_found="model '{name}' not found")

    async def _prepare(
        self,
        req: GenerateRequest | ChatRequest,
        details: ModelDetails,
        *,
        verb: str,
        template: str | None = None,
        needs: str | None = None,
        images: Sequence[Sequence[bytes]],
    ) -> tuple[ModelPrompt, bool | str | None]:
        """The model's prompt machinery (with the request's own `template`), once the model
        can do what is asked: `verb` at all, the capability a feature `needs`, the thinking
        asked for, the `images` of each message (their bytes checked here, before any runner
        sees them). Returns it and the `think` that applies."""
        model = await self.prompt_of(details, template)  # parsed off the event loop
        caps = model.capabilities
        if "completion" not in caps:
            raise APIError(400, f'"{req.model}" does not support {verb}')
        if needs is not None and needs not in caps:
            raise APIError(400, f"{details.name} does not support {needs}")
        think = model.request_think(_check_think(req.model, req.think, caps))
        if any(images):
            if "vision" not in caps:
                raise APIError(400, NO_VISION)
            if not model.has_projector:
                raise APIError(400, VISION_NOT_SERVED)
            families = details.config.model_families or ()
            if "mllama" in families and any(len(each) > 1 for each in images):
                raise APIError(400, MLLAMA_ONE_IMAGE)
            problem = check_images(image for each in images for image in each)
            if problem:
                raise APIError(400, problem)
        return model, think

    async def _unload(self, details: ModelDetails) -> None:
        """A request with nothing to say and `keep_alive: 0` unloads the model, as Ollama's."""
        self.scheduler.expire_model(await self.spec(details))

    @asynccontextmanager
    async def _slot(
        self, details: ModelDetails, req: GenerateRequest | ChatRequest
    ) -> AsyncIterator[_Slot]:
        spec = await self.spec(details)
        options = merge_options(details, req.options, self.settings.context_length)
        async with self._leased(spec, options, req.keep_alive, req.priority) as lease:
            yield _Slot(spec, options, lease)

    # ----- generate

    @trio.as_safe_channel
    async def generate(self, req: GenerateRequest) -> AsyncGenerator[dict[str, Any], None]:
        started = trio.current_time()
        details = await self._model_for(req, APIError(404, f"model '{req.model}' not found"))
        if req.prompt == "" and req.keep_alive == 0:
            await self._unload(details)
            yield _done(req.model, "unload", response="")
            return
        _check_request(req)
        if req.raw and (req.template is not None or req.system is not None or req.context):
            raise APIError(400, "raw mode does not support template, system, or context")
        model, think = await self._prepare(
            req, details, verb="generate", template=req.template,
            needs="insert" if req.suffix else None, images=[req.images],
        )  # fmt: skip
        req = attrs.evolve(req, think=think)
        if req.debug_render_only:
            with prompt_errors():
                text = await trio.to_thread.run_sync(_generate_text, req, model)
            yield _debug_render(req.model, text, len(req.images))
            return
        async with self._slot(details, req) as slot:
            if req.prompt == "" and not req.suffix:
                yield _done(req.model, "load", response="")
                return
            spec, options, lease = slot.spec, slot.options, slot.lease
            runner = lease.runner
            prefix = ""
            if req.context:
                prefix = await runner.detokenize(_fit_context(req.context, options, lease.num_ctx))
            with prompt_errors():
                if req.raw or req.suffix:
                    # Images as they came, image N for an `[img-N]` the prompt itself holds.
                    fitted = FittedPrompt(
                        req.prompt  # nothing to render: no trip to a worker thread
                        if req.raw
                        else await trio.to_thread.run_sync(_generate_text, req, model),
                        req.images,
                    )
                else:
                    fitted = await fit_prompt(
                        model, _generate_messages(req, model), num_ctx=lease.num_ctx,
                        tokenize=runner.count_tokens, truncate=req.truncate, think=req.think,
                        max_token_bytes=window_of(runner)[1],
                    )  # fmt: skip
            prompt = prefix + fitted.text
            text = ""
            # Generate parses thinking only (tool calls are for chat); a raw prompt skips the
            # model's built-in parser but not the template's thinking tags (Ollama's rule).
            parser = model.output_parser(prompt, think=think, raw=req.raw)
            completion = _completion(
                runner, attrs.evolve(fitted, text=prompt), options, req,
                preserved=parser.preserved_tokens,
            )  # fmt: skip
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

    # ----- chat

    @trio.as_safe_channel
    async def chat(self, req: ChatRequest) -> AsyncGenerator[dict[str, Any], None]:
        started = trio.current_time()
        details = await self._model_for(req, APIError(400, "model is required"))
        _check_request(req)
        if not req.messages and req.keep_alive == 0:
            await self._unload(details)
            yield _done(req.model, "unload", message={"role": "assistant", "content": ""})
            return
        model, think = await self._prepare(
            req, details, verb="chat", needs="tools" if req.tools else None,
            images=[m.images for m in req.messages],
        )  # fmt: skip
        msgs = model.conversation(req.messages, with_model_messages=True)
        msgs = model.drop_old_thinking(msgs, details.name.model)
        if req.debug_render_only:
            with prompt_errors():
                tagged, images = tag_images(msgs)
                text = await trio.to_thread.run_sync(
                    functools.partial(model.render, tagged, tools=req.tools or None, think=think)
                )
            yield _debug_render(req.model, text, len(images))
            return
        async with self._slot(details, req) as slot:
            if not req.messages:
                yield _done(req.model, "load", message={"role": "assistant", "content": ""})
                return
            runner = slot.lease.runner
            with prompt_errors():
                prompt = await _fit_chat(model, msgs, slot.lease, req, think)
            parser = model.output_parser(
                prompt.text, think=think, tools=req.tools, last=msgs[-1] if msgs else None
            )
            # Ollama's structured output for a model that thinks: it thinks free of the format;
            # when its answer begins, that run stops and a second one answers under the format,
            # the thinking so far handed back as an assistant message. A built-in parser told
            # not to think answers under the format at once.
            told_not_to = (
                parser.builtin is not None and parser.builtin.has_thinking_support
                and think is False
            )  # fmt: skip
            run = _ChatRun(
                parser, bool(req.format) and "thinking" in model.capabilities
                and (parser.thinking is not None or parser.builtin is not None)
                and not told_not_to,
                _TokenClock.start(self.metrics, slot.spec.name, started),
            )  # fmt: skip
            while True:
                one_run = _chat_run(run, runner, prompt, slot.options, req, slot.lease, started)
                async with aclosing(one_run) as chunks:
                    async for out in chunks:
                        yield out
                if not run.restart:
                    return
                msgs = [*msgs, Message(role="assistant", thinking=run.thought)]
                with prompt_errors():
                    prompt = await _fit_chat(model, msgs, slot.lease, req, think)
                prompt = attrs.evolve(prompt, text=prompt.text + model.format_restart)


def _done(model: str, reason: str, **empty: Any) -> dict[str, Any]:
    """The one chunk of a request that only loads or unloads the model."""
    return {"model": model, "created_at": utc_now(), **empty, "done": True, "done_reason": reason}


async def _fit_chat(
    model: ModelPrompt,
    msgs: list[Message],
    lease: Lease,
    req: ChatRequest,
    think: bool | str | None,
) -> FittedPrompt:
    runner = lease.runner
    return await fit_prompt(
        model, msgs, num_ctx=lease.num_ctx, tokenize=runner.count_tokens,
        truncate=req.truncate, tools=req.tools or None, think=think,
        max_token_bytes=window_of(runner)[1],
    )  # fmt: skip


async def _chat_run(
    run: _ChatRun,
    runner: RunnerConnection,
    prompt: FittedPrompt,
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
        _completion(runner, prompt, options, req, fmt, run.parser.preserved_tokens) as events,
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
            for parsed, logprobs in _with_logprobs(_parse(run.parser, chunk.text), chunk.logprobs):
                if first_of_two and run.thought + parsed.thinking and parsed.content:
                    parsed, run.restart = Parsed(thinking=parsed.thinking), True
                run.thought += parsed.thinking
                yield {"model": req.model, "created_at": utc_now(),
                       "message": _chat_message(parsed), "done": False,
                       **logprobs}  # fmt: skip
                if run.restart:
                    return


def _generate_messages(req: GenerateRequest, model: ModelPrompt) -> list[Message]:
    """Ollama: the request's system (else the model's), the model's MESSAGEs (unless a
    `context` continues a conversation), then the prompt as a user message."""
    user = Message(role="user", content=req.prompt, images=req.images)
    if req.system is not None:
        history = [] if req.context else list(model.messages)
        return [Message(role="system", content=req.system), *history, user]
    return model.conversation([user], with_model_messages=not req.context)


def _generate_text(req: GenerateRequest, model: ModelPrompt) -> str:
    """The whole prompt, untruncated: raw, fill-in-the-middle, or rendered messages."""
    if req.raw:
        return str(req.prompt)
    if req.suffix:
        return model.render_suffix(req.prompt, req.suffix)
    return model.render(tag_images(_generate_messages(req, model))[0], think=req.think)


def _check_think(model: str, think: bool | str | None, caps: list[str]) -> bool | str | None:
    """The request's `think` as Ollama reads it: a thinking model thinks unless told not
    to; any other refuses a request to think (a level asks to think too)."""
    if "thinking" in caps:
        return True if think is None else think
    if think is True or isinstance(think, str):
        raise APIError(400, f'"{model}" does not support thinking')
    return think


def _check_request(req: GenerateRequest | ChatRequest) -> None:
    """What is wrong with a request whatever the model: before a runner is leased for it."""
    if not 0 <= req.top_logprobs <= 20:
        raise APIError(400, "top_logprobs must be between 0 and 20")
    if problem := format_problem(req.format):
        raise APIError(400, problem)


@asynccontextmanager
async def _completion(
    runner: RunnerConnection,
    fitted: FittedPrompt,
    options: dict[str, Any],
    req: GenerateRequest | ChatRequest,
    fmt: str | None = None,
    preserved: Sequence[str] = (),
) -> AsyncIterator[CompletionEvents]:
    """The runner's stream for one completion (its refusals become API errors in `_leased`);
    `fmt` stands in for the request's `format` when given; `preserved` are the control tokens
    the output parser reads, which the runner writes as text."""
    # A prompt that surely overflows the window travels without the middle no cut keeps.
    num_ctx, bound = window_of(runner)
    prompt = shorten(
        fitted.text, n_ctx=num_ctx, num_keep=int(options["num_keep"]), max_token_bytes=bound
    )
    request = Completion(
        id=0, prompt=prompt, sampling=sampling_of(options),
        format=req.format if fmt is None else fmt,
        truncate=req.truncate, shift=req.shift, logprobs=req.logprobs,
        top_logprobs=req.top_logprobs if req.logprobs else 0,
        images=[base64.b64encode(image).decode() for image in fitted.images],
        preserved=list(preserved),
    )  # fmt: skip
    async with runner.completion(request) as stream:
        yield stream


def _fit_context(context: Sequence[int], options: dict[str, Any], num_ctx: int) -> list[int]:
    """A `context` longer than the context window, cut as the runner would cut the prompt (the
    first `num_keep` tokens and the most recent ones), before it travels at all."""
    return cut(list(context), num_ctx, int(options["num_keep"]))


async def _context_of(runner: RunnerConnection, text: str, options: dict[str, Any]) -> list[int]:
    """Generate's `context`: the tokens of the prompt and the answer, as Ollama returns them;
    for a prompt that overflowed the window, the tokens the window kept (the next request
    would cut the rest anyway), tokenized from its two ends only."""
    (num_ctx, bound), num_keep = window_of(runner), int(options["num_keep"])
    short = shorten(text, n_ctx=num_ctx, num_keep=num_keep, max_token_bytes=bound)
    tokens = await runner.tokenize(short)
    return tokens if short is text else cut(tokens, num_ctx, num_keep)


def _debug_render(model: str, prompt: str, images: int) -> dict[str, Any]:
    """`_debug_render_only`: the prompt the model would have read, and nothing run."""
    return {
        "model": model,
        "created_at": utc_now(),
        "response": "",
        "done": True,
        "_debug_info": {"rendered_template": prompt, "image_count": images},
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
