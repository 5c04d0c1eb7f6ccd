"""`run MODEL [PROMPT]`: one answer from `/api/generate`, or an interactive chat session.

Interactive only when no prompt is given and stdin is a terminal (Ollama's rule); otherwise
stdin, if piped, is prepended to the prompt and the answer is streamed to stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from trio_ollama.cli.answer import RunOptions, metrics_summary, stream_answer
from trio_ollama.cli.client import APIError, Client, CLIError
from trio_ollama.cli.commands import transfer
from trio_ollama.cli.interactive import Session
from trio_ollama.gocompat.durations import (
    DurationError,
    keep_alive_json,
    parse_keep_alive_duration,
)


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


def parse_keep_alive(value: str | None) -> int | str | None:
    """`--keepalive` as Ollama's client sends it: -1 for "forever", else a Go duration string."""
    if value is None:
        return None
    try:
        return keep_alive_json(parse_keep_alive_duration(value))
    except DurationError as exc:
        raise CLIError(str(exc)) from None


def show_or_pull(client: Client, model: str) -> dict[str, Any]:
    """`/api/show`; a model that is not here is pulled first, as `ollama run` does."""
    try:
        info: dict[str, Any] = client.json("POST", "/api/show", {"model": model})
        return info
    except APIError as missing:
        if missing.status != 404:
            raise
        transfer(client, "pull", model, insecure=False)
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
    answer = stream_answer(client.stream("/api/generate", body), wordwrap=opts.wordwrap)
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
    return Session(client, opts, info).run()
