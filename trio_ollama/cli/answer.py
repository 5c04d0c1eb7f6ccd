"""Printing a streamed answer (thinking, text, timings) as `ollama run` does, shared by the
one-shot and the interactive modes."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Generator, Mapping
from typing import Any, TextIO

import attrs

from trio_ollama.cli.progress import Progress
from trio_ollama.cli.wrap import WordWrap
from trio_ollama.gocompat.durations import format_go_duration

NS = 1_000_000_000


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
    # The prompt's evaluation and the answer's are reported alike, the prompt's first.
    for key, label in (("prompt_eval", "prompt eval"), ("eval", "eval")):
        count, nanoseconds = get(f"{key}_count"), get(f"{key}_duration")
        if count > 0:
            lines.append((f"{label} count:", f"{count} token(s)"))
        if nanoseconds > 0:
            lines.append((f"{label} duration:", duration(f"{key}_duration")))
            lines.append((f"{label} rate:", f"{count / (nanoseconds / NS):.2f} tokens/s"))
    return "".join(f"{label:<22}{value}\n" for label, value in lines)


@attrs.define
class Answer:
    content: str
    thinking: str
    final: dict[str, Any]
    interrupted: bool


def stream_answer(
    chunks: Generator[dict[str, Any], None, None],
    out: TextIO | None = None,
    *,
    wordwrap: bool = False,
) -> Answer:
    """Print a streamed answer as it arrives. Ctrl+C stops it (closing the stream tells the
    server to stop) and returns what came so far, marked interrupted.

    With `wordwrap`, and `out` a terminal at least 10 columns wide, words are not broken across
    lines (`WordWrap`).
    """
    out = sys.stdout if out is None else out
    wrap = _wrapper(out) if wordwrap else None
    write = out.write if wrap is None else (lambda text: out.write(wrap.feed(text)))
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
                    write("Thinking...\n")
                    in_thinking = True
                thinking.append(thought)
                write(thought)
            if text and in_thinking:
                write("\n...done thinking.\n\n")
                in_thinking = False
            content.append(text)
            write(text)
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


def _wrapper(out: TextIO) -> WordWrap | None:
    if not out.isatty():
        return None
    width = shutil.get_terminal_size().columns
    return WordWrap(width) if width >= 10 else None
