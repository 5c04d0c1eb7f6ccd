"""One request, streamed and timed, in any of the four APIs: Ollama's `/api/generate` and
`/api/chat`, OpenAI's `/v1/chat/completions` and `/v1/completions`.

Per token the only work is parsing the line it came in and noting the time: the generator must
never be what limits the measure (`trio-ollama bench ceiling` measures its own limit).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import attrs
import httpx
import trio

from trio_ollama.bench.plan import Planned
from trio_ollama.bench.spec import Api, Disconnects


@attrs.define
class Outcome:
    """What the client saw of one request. Times are seconds from the run's start
    (`sent`) or from sending (the rest); token counts are the server's where it gives them."""

    index: int
    model: str
    sent: float
    status: int = 0
    error: str = ""
    ttft: float | None = None
    gaps: list[float] = attrs.field(factory=list)
    e2e: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    chunks: int = 0  # pieces of text received
    load_s: float | None = None  # the server's load time (`load_duration`; trio-ollama's
    # includes the time queued)
    planned: float | None = None  # when the plan said to send it (open loops and traces)
    disconnect: str = ""  # what the plan asked for
    disconnected: bool = False  # and whether the client did hang up there

    @property
    def ok(self) -> bool:
        """Answered whole: what latency figures are taken over."""
        return self.status == 200 and not self.error and not self.disconnected

    @property
    def tpot(self) -> float | None:
        """Mean seconds per output token after the first, by the server's count of them
        (a chunk can carry several tokens), else by chunks."""
        if self.ttft is None or self.e2e is None or not self.gaps:
            return None
        tokens = self.output_tokens if self.output_tokens else self.chunks
        return sum(self.gaps) / max(tokens - 1, 1)

    def to_json(self) -> dict[str, Any]:
        # A result file's record (not a Go type): every field, the gaps rounded.
        data = attrs.asdict(self)
        data["gaps"] = [round(g, 6) for g in self.gaps]
        return data


def request_of(api: Api, plan: Planned, raw: bool) -> tuple[str, dict[str, Any]]:
    """The path and body that ask for `plan`, streaming (with its `priority`, if it has one:
    trio-ollama's and vLLM's extension)."""
    path, body = _request_of(api, plan, raw)
    if plan.priority is not None:
        body["priority"] = plan.priority
    return path, body


def _request_of(api: Api, plan: Planned, raw: bool) -> tuple[str, dict[str, Any]]:
    messages = list(plan.messages) or [{"role": "user", "content": plan.prompt}]
    if api == "generate":
        options = {**plan.options, "num_predict": plan.max_tokens}
        body: dict[str, Any] = {
            "model": plan.model, "prompt": plan.prompt, "stream": True, "options": options
        }  # fmt: skip
        if raw:
            body["raw"] = True
        return "/api/generate", body
    if api == "chat":
        options = {**plan.options, "num_predict": plan.max_tokens}
        return "/api/chat", {
            "model": plan.model, "messages": messages, "stream": True, "options": options
        }  # fmt: skip
    common = {"model": plan.model, "stream": True, "max_tokens": plan.max_tokens,
              "stream_options": {"include_usage": True}, **plan.options}  # fmt: skip
    if api == "openai-chat":
        return "/v1/chat/completions", {**common, "messages": messages}
    return "/v1/completions", {**common, "prompt": plan.prompt}


async def run_one(
    client: httpx.AsyncClient, api: Api, plan: Planned, out: Outcome, disconnects: Disconnects,
    raw: bool = False, seconds: float = math.inf,
) -> None:  # fmt: skip
    """Send `plan`, read its stream into `out`, and hang up where the plan says.

    `out` is the caller's, so that a request cut short (the step's end, Ctrl-C) still leaves
    what it measured: its `error` then says so. A planned hang-up in the queue or in prefill
    that comes too late (the status, or the first token, arrived first) is not made.
    `seconds` bounds the whole request.
    """
    path, body = request_of(api, plan, raw)
    sent = time.perf_counter()
    openai = api.startswith("openai")
    deadline = math.inf
    if plan.disconnect == "queue":
        deadline = trio.current_time() + disconnects.queue_s
    elif plan.disconnect == "prefill":
        deadline = trio.current_time() + disconnects.prefill_s
    last = sent
    finished = False
    out.error = "cut: the run ended first"  # until the request ends on its own
    try:
        with trio.move_on_after(seconds) as timer, trio.CancelScope(deadline=deadline) as hang_up:
            try:
                async with client.stream("POST", path, json=body) as response:
                    out.status = response.status_code
                    if plan.disconnect == "queue":
                        hang_up.deadline = math.inf  # answered: too late to leave the queue
                    if response.status_code != 200:
                        out.error = _error_text(await response.aread())
                        return
                    out.error = ""
                    async for line in response.aiter_lines():
                        now = time.perf_counter()
                        if openai and line == "data: [DONE]":
                            finished = True
                            continue
                        chunk = _parse(line, openai)
                        if chunk is None:
                            continue
                        if "error" in chunk:
                            out.error = _error_text(json.dumps(chunk).encode())
                            break
                        if _text(chunk, api):
                            if out.ttft is None:
                                out.ttft = now - sent
                                if plan.disconnect == "prefill":
                                    hang_up.deadline = math.inf  # too late for prefill
                            else:
                                out.gaps.append(now - last)
                            last = now
                            out.chunks += 1
                            if (
                                plan.disconnect == "after_tokens"
                                and out.chunks >= disconnects.after_k
                            ):
                                out.disconnected = True
                                return
                        finished |= _counts(chunk, api, out)
                    if not finished and not out.error:
                        out.error = "stream ended early: no final message"
            except httpx.HTTPError as exc:
                out.error = f"{type(exc).__name__}: {exc}"
        if hang_up.cancelled_caught:
            out.disconnected = True
            out.error = ""
        elif timer.cancelled_caught:
            out.error = f"timed out after {seconds:g} s"
    finally:
        out.e2e = time.perf_counter() - sent
        if out.status == 200 and not (finished or out.error or out.disconnected):
            out.error = "cut: the run ended first"  # mid-stream: answered, but not whole


def _parse(line: str, openai: bool) -> dict[str, Any] | None:
    if openai:
        if not line.startswith("data: ") or line == "data: [DONE]":
            return None
        line = line[6:]
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {"error": f"not JSON: {line[:80]}"}
    return value if isinstance(value, dict) else None


def _text(chunk: dict[str, Any], api: Api) -> bool:
    if api == "generate":
        return bool(chunk.get("response"))
    if api == "chat":
        return bool((chunk.get("message") or {}).get("content"))
    choices = chunk.get("choices") or []
    if not choices:
        return False
    if api == "openai-chat":
        return bool((choices[0].get("delta") or {}).get("content"))
    return bool(choices[0].get("text"))


def _counts(chunk: dict[str, Any], api: Api, out: Outcome) -> bool:
    """Take the server's counts from the last message; True for Ollama's final one."""
    if api in ("generate", "chat"):
        if not chunk.get("done"):
            return False
        out.prompt_tokens = chunk.get("prompt_eval_count")
        out.output_tokens = chunk.get("eval_count")
        if chunk.get("load_duration") is not None:
            out.load_s = chunk["load_duration"] / 1e9
        return True
    usage = chunk.get("usage")
    if usage:
        out.prompt_tokens = usage.get("prompt_tokens")
        out.output_tokens = usage.get("completion_tokens")
    return False


def _error_text(body: bytes) -> str:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body[:200].decode(errors="replace")
    error = value.get("error", value) if isinstance(value, dict) else value
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:500]
