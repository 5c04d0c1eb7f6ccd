"""`run MODEL [PROMPT]`: one answer from `/api/generate`, or an interactive chat session.

Interactive only when no prompt is given and stdin is a terminal (Ollama's rule); otherwise
stdin, if piped, is prepended to the prompt and the answer is streamed to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Generator, Mapping
from typing import Any, TextIO

import attrs

from trio_ollama.cli.client import APIError, Client, CLIError
from trio_ollama.cli.commands import transfer
from trio_ollama.cli.progress import Progress
from trio_ollama.durations import DurationError, format_go_duration, parse_go_duration_ns

NS = 1_000_000_000
_REGISTRY_UNREACHABLE = 502


@attrs.define
class RunOptions:
    model: str
    format: Any = None
    keep_alive: Any = None
    verbose: bool = False
    wordwrap: bool = True
    system: str = ""
    options: dict[str, Any] = attrs.field(factory=dict)
    messages: list[dict[str, Any]] = attrs.field(factory=list)


def parse_format(value: str | None) -> Any:
    """`--format json`, or a JSON schema given inline, as the API's `format` field."""
    if not value:
        return None
    if value == "json":
        return "json"
    try:
        schema = json.loads(value)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise CLIError(f'invalid format "{value}": use json or a JSON schema object')
    return schema


def parse_keep_alive(value: str | None) -> Any:
    """`--keepalive` as Ollama's client sends it: -1 for "forever", else a Go duration string."""
    if value is None:
        return None
    try:
        ns = parse_go_duration_ns(value)
    except DurationError as exc:
        raise CLIError(str(exc)) from None
    return -1 if ns < 0 else format_go_duration(ns / NS)


def metrics_summary(final: Mapping[str, Any]) -> str:
    """Ollama's `Metrics.Summary`: only the values that are present and non-zero."""

    def get(key: str) -> int:
        value = final.get(key)
        return int(value) if isinstance(value, int | float) else 0

    def duration(key: str) -> str:
        return format_go_duration(get(key) / NS)

    lines: list[tuple[str, str]] = []
    if get("total_duration") > 0:
        lines.append(("total duration:", duration("total_duration")))
    if get("load_duration") > 0:
        lines.append(("load duration:", duration("load_duration")))
    if get("prompt_eval_count") > 0:
        lines.append(("prompt eval count:", f"{get('prompt_eval_count')} token(s)"))
    if get("prompt_eval_duration") > 0:
        rate = get("prompt_eval_count") / (get("prompt_eval_duration") / NS)
        lines.append(("prompt eval duration:", duration("prompt_eval_duration")))
        lines.append(("prompt eval rate:", f"{rate:.2f} tokens/s"))
    if get("eval_count") > 0:
        lines.append(("eval count:", f"{get('eval_count')} token(s)"))
    if get("eval_duration") > 0:
        rate = get("eval_count") / (get("eval_duration") / NS)
        lines.append(("eval duration:", duration("eval_duration")))
        lines.append(("eval rate:", f"{rate:.2f} tokens/s"))
    return "".join(f"{label:<22}{value}\n" for label, value in lines)


@attrs.define
class Answer:
    content: str
    thinking: str
    final: dict[str, Any]
    interrupted: bool


def stream_answer(
    chunks: Generator[dict[str, Any], None, None], out: TextIO | None = None
) -> Answer:
    """Print a streamed answer as it arrives. Ctrl+C stops it (closing the stream tells the
    server to stop) and returns what came so far, marked interrupted."""
    out = sys.stdout if out is None else out
    content: list[str] = []
    thinking: list[str] = []
    final: dict[str, Any] = {}
    in_thinking = False
    waiting = Progress()
    waiting.status("")  # a bare spinner until the first token, on a terminal only
    try:
        for chunk in chunks:
            message = chunk.get("message") or {}
            text = str(chunk.get("response") or message.get("content") or "")
            thought = str(chunk.get("thinking") or message.get("thinking") or "")
            if text or thought:
                waiting.stop(clear=True)
            if thought:
                if not in_thinking:
                    out.write("Thinking...\n")
                    in_thinking = True
                thinking.append(thought)
                out.write(thought)
            if text and in_thinking:
                out.write("\n...done thinking.\n\n")
                in_thinking = False
            content.append(text)
            out.write(text)
            out.flush()
            if chunk.get("done"):
                final = chunk
    except KeyboardInterrupt:
        waiting.stop(clear=True)
        out.write("\n")
        out.flush()
        return Answer("".join(content), "".join(thinking), final, interrupted=True)
    finally:
        waiting.stop(clear=True)
        chunks.close()  # an interrupt between two chunks must still end the request
    return Answer("".join(content), "".join(thinking), final, interrupted=False)


def show_or_pull(client: Client, model: str) -> dict[str, Any]:
    """`/api/show`; a model that is not here is pulled first, as `ollama run` does."""
    try:
        info: dict[str, Any] = client.json("POST", "/api/show", {"model": model})
        return info
    except APIError as missing:
        if missing.status != 404:
            raise
        try:
            transfer(client, "pull", model, insecure=False)
        except APIError as pull_error:
            # Without a registry the pull can only fail; "not found" is the useful answer. The
            # error arrives in the stream, after a status line, so its 502 is not visible.
            unreachable = pull_error.status == _REGISTRY_UNREACHABLE or (
                "registry is not reachable" in pull_error.message
            )
            raise (missing if unreachable else pull_error) from None
        shown: dict[str, Any] = client.json("POST", "/api/show", {"model": model})
        return shown


def generate_once(client: Client, opts: RunOptions, prompt: str) -> None:
    body: dict[str, Any] = {"model": opts.model, "prompt": prompt, "options": opts.options}
    if opts.format is not None:
        body["format"] = opts.format
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    if opts.system:
        body["system"] = opts.system
    answer = stream_answer(client.stream("/api/generate", body))
    if answer.interrupted:
        return
    if prompt:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if opts.verbose and answer.final:
        sys.stderr.write(metrics_summary(answer.final))


def run(client: Client, opts: RunOptions, prompt_words: list[str]) -> int:
    prompts = list(prompt_words)
    interactive = True
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            prompts.insert(0, piped)
        interactive = False
    if prompts:
        interactive = False
    info = show_or_pull(client, opts.model)
    if not interactive:
        generate_once(client, opts, " ".join(prompts))
        return 0
    # Imported here: the session module builds on this one.
    from trio_ollama.cli.interactive import Session

    return Session(client, opts, info).run()
