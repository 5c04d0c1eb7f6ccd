"""A trivial streaming endpoint in the four APIs: each request gets as many one-word tokens as it
asks for, as fast as they can be written (or `token_delay` apart). It is what the load
generator's own ceiling is measured against, and a fake target for its tests.

    python -m trio_ollama.bench.echo --port 18000 [--token-delay 0.01]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def request_body(scope: dict[str, Any], receive: Receive, send: Send) -> bytes | None:
    """An ASGI request's whole body; None for the lifespan scope, which this answers (startup
    and shutdown) until the server shuts down."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return None
    body: bytes = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def make_app(token_delay: float = 0.0) -> Callable[[Any, Receive, Send], Awaitable[None]]:
    """An ASGI app; `served` counts the requests it answered and the tokens it sent."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        body = await request_body(scope, receive, send)
        if body is None:
            return
        path = scope["path"]
        if scope["method"] == "GET":
            await _answer(send, 200, b"echo", "text/plain")
            return
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            await _answer(send, 400, b'{"error":"not JSON"}', "application/json")
            return
        openai = path.startswith("/v1/")
        n = int(
            request.get("max_tokens") or (request.get("options") or {}).get("num_predict") or 16
        )
        text = request.get("prompt") or json.dumps(request.get("messages", ""))
        prompt = len(str(text).split())
        kind = "text/event-stream" if openai else "application/x-ndjson"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind.encode())]})  # fmt: skip
        for i in range(n):
            if token_delay:
                await trio.sleep(token_delay)
            await _chunk(send, _piece(path, i, request), openai)
            app.tokens += 1  # type: ignore[attr-defined]
        await _chunk(send, _final(path, n, prompt, request), openai)
        if openai:
            await send(
                {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        app.requests += 1  # type: ignore[attr-defined]

    app.requests = 0  # type: ignore[attr-defined]
    app.tokens = 0  # type: ignore[attr-defined]
    return app


def _piece(path: str, i: int, request: dict[str, Any]) -> dict[str, Any]:
    word = f" w{i}"
    model = request.get("model", "")
    if path == "/api/generate":
        return {"model": model, "response": word, "done": False}
    if path == "/api/chat":
        return {"model": model, "message": {"role": "assistant", "content": word}, "done": False}
    if path == "/v1/chat/completions":
        return {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": word}}],
        }
    return {"object": "text_completion", "choices": [{"index": 0, "text": word}]}


def _final(path: str, n: int, prompt: int, request: dict[str, Any]) -> dict[str, Any]:
    if path.startswith("/api/"):
        return {"model": request.get("model", ""), "done": True, "done_reason": "length",
                "prompt_eval_count": prompt, "eval_count": n, "load_duration": 0}  # fmt: skip
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": n}}


async def _chunk(send: Send, value: dict[str, Any], openai: bool) -> None:
    data = json.dumps(value, separators=(",", ":")).encode()
    line = b"data: " + data + b"\n\n" if openai else data + b"\n"
    await send({"type": "http.response.body", "body": line, "more_body": True})


async def _answer(send: Send, status: int, body: bytes, kind: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind.encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def serve_echo(
    app: Any, port: int = 0, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `app` (from `make_app`) on 127.0.0.1 (loopback only); `task_status` gets its URL."""
    import anycorn
    import anycorn.config

    config = anycorn.config.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None  # its one line ("Running on ...") is the URL printed below

    async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await anycorn.serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started)
        task_status.started(binds[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args()

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_echo, make_app(args.token_delay), args.port)
            print(url, flush=True)

    trio.run(run)


if __name__ == "__main__":
    main()
