"""The HTTP API in-process and fast: the real Quart app, service, scheduler and store, on a tiny
GGUF served by the fake engine (in-process runners, no subprocess, no model weights). The request
rules live here; `test_api.py` runs the same server for real, with the real model. The `server`
fixture is `tests/conftest.py`'s, its helpers `tests/inprocess.py`'s."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.inprocess import (
    CHATML,
    Engines,
    Server,
    http_scope,
    idle,
    ndjson,
    open_served,
    post,
    tiny_settings,
    until,
)
from trio_ollama.api.app import create_app
from trio_ollama.api.service import Service
from trio_ollama.config import Settings
from trio_ollama.runner.fake import FakeConfig
from trio_ollama.scheduler import ModelSpec, open_scheduler
from trio_ollama.store import Store

# ----- the happy paths


async def test_generate_streams_ndjson_to_a_final_chunk(server: Server) -> None:
    r = await post(server, "/api/generate", {"model": "tiny", "prompt": "hi"})
    assert r.status_code == 200 and r.content_type == "application/x-ndjson"
    chunks = await ndjson(r)
    assert "".join(c["response"] for c in chunks) == "".join(f"fake{i} " for i in range(1, 11))
    final = chunks[-1]
    assert final["done"] and final["done_reason"] == "length" and final["eval_count"] == 10
    assert final["context"] and all(not c["done"] for c in chunks[:-1])


async def test_chat_without_streaming_is_one_object(server: Server) -> None:
    body = {"model": "tiny", "stream": False, "options": {"num_predict": 3},
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    r = await post(server, "/api/chat", body)
    reply = await r.get_json()
    assert r.status_code == 200 and reply["done"]
    assert reply["message"] == {"role": "assistant", "content": "fake1 fake2 fake3 "}


async def test_load_and_unload_shortcuts_and_ps(server: Server) -> None:
    r = await post(server, "/api/generate", {"model": "tiny"})
    assert (await r.get_json())["done_reason"] == "load"
    ps = await (await server.app.test_client().get("/api/ps")).get_json()
    assert [m["name"] for m in ps["models"]] == ["tiny:latest"]
    r = await post(server, "/api/generate", {"model": "tiny", "keep_alive": 0})
    assert (await r.get_json())["done_reason"] == "unload"
    await until(lambda: not server.scheduler.running())


async def test_openai_chat_and_its_event_stream(server: Server) -> None:
    body = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
    reply = await (await post(server, "/v1/chat/completions", body)).get_json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["content"] == "fake1 fake2 "
    assert reply["choices"][0]["finish_reason"] == "length"
    r = await post(server, "/v1/chat/completions", {**body, "stream": True})
    text = (await r.get_data()).decode()
    assert r.content_type.startswith("text/event-stream") and text.endswith("data: [DONE]\n\n")


async def test_prompts_whose_ids_outgrow_a_runner_frame_are_answered(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fitting a prompt needs only its count, and a `context` comes back in parts: a prompt
    of more ids than a frame holds (a 60 MB one, with 64 MiB frames; shrunk here to 1 MiB
    frames and a 400 KB prompt) is answered, not refused as too large."""
    monkeypatch.setattr("trio_ollama.runner.protocol.MAX_FRAME", 1 << 20)
    monkeypatch.setattr("trio_ollama.runner.server.TOKENS_PER_FRAME", 1 << 16)
    prompt = "ab" * 200_000  # 400,000 ids, 1.6 MB as a list
    body = {"model": "tiny", "stream": False, "options": {"num_predict": 2}}
    r = await post(server, "/api/generate", {**body, "prompt": prompt})
    assert r.status_code == 200, await r.get_data()
    context = (await r.get_json())["context"]
    assert len(context) > 400_000 and bytes(context).count(b"ab") == 200_000
    messages = [{"role": "user", "content": "hi"}, {"role": "user", "content": prompt}]
    r = await post(server, "/api/chat", {**body, "messages": messages})
    assert r.status_code == 200, await r.get_data()
    assert (await r.get_json())["prompt_eval_count"] > 400_000


# ----- bad input: the real route's decoding, with Ollama's texts


GO = "json: cannot unmarshal "


@pytest.mark.parametrize(
    ("path", "raw", "status", "message"),
    [
        ("/api/generate", b"", 400, "missing request body"),
        ("/api/chat", b"[]", 400, GO + "array into Go value of type api.ChatRequest"),
        ("/api/generate", b'{"model": "tiny", "prompt": 5}', 400,
         GO + "number into Go struct field GenerateRequest.prompt of type string"),
        ("/api/chat", b'{"model": "tiny", "messages": [{"role": "user", "content": []}]}', 400,
         GO + "array into Go struct field Message.messages.content of type string"),
        ("/api/generate", b'{"model": "tiny", "options": {"num_ctx": -5}}', 400,
         'option "num_ctx" must be >= 0, got -5'),
        ("/api/generate", b'{"model": "nope", "prompt": "x"}', 404, "model 'nope' not found"),
        ("/api/chat", b'{"model": "tiny", "think": true, "messages": []}', 400,
         '"tiny" does not support thinking'),
        ("/api/embed", b'{"model": "tiny", "input": 5}', 400, "invalid input type"),
        ("/api/show", b'{"model": "tiny", "options": "x"}', 400,
         GO + "string into Go struct field ShowRequest.options of type map[string]interface {}"),
        ("/api/generate", b'{"model": "tiny", "prompt": "x\\ud800y", "context": [-1]}', 400,
         "invalid token id -1 in context[0]"),
        ("/api/chat", b'{"tools": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400,
         "invalid JSON: exceeded max depth of 256"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_4xx_with_ollamas_text(
    server: Server, path: str, raw: bytes, status: int, message: str
) -> None:
    r = await post(server, path, raw=raw)
    assert (r.status_code, await r.get_json()) == (status, {"error": message})


async def test_deep_nesting_on_the_openai_layer_is_a_400(server: Server) -> None:
    r = await post(server, "/v1/chat/completions", raw=b"[" * 100_000 + b"]" * 100_000)
    error = (await r.get_json())["error"]
    assert r.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["message"] == "invalid JSON: exceeded max depth of 256"


async def test_malformed_json_is_400_and_the_server_carries_on(server: Server) -> None:
    r = await post(server, "/api/generate", raw=b'{"model": ')
    assert r.status_code == 400
    assert (await r.get_json())["error"].startswith("invalid JSON: ")
    r = await post(server, "/api/generate", {"model": "tiny", "prompt": "hi", "stream": False})
    assert r.status_code == 200


# ----- streams end with the request, whatever the client does


async def test_an_error_after_output_is_a_last_line(server: Server) -> None:
    server.engines.config = FakeConfig(crash_after_tokens=3)
    r = await post(server, "/api/generate", {"model": "tiny", "prompt": "hi"})
    chunks = await ndjson(r)
    assert r.status_code == 200 and [c["response"] for c in chunks[:2]] == ["fake1 ", "fake2 "]
    assert chunks[-1] == {"error": "runner process exited"}


SLOW_GENERATE = json.dumps({"model": "tiny", "prompt": "hi", "options": {"num_predict": 1000}})


async def test_a_bug_inside_a_stream_fails_that_request_only(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that is no API answer (a bug) becomes a 500, or a last error line once
    output has gone out; the server goes on serving."""
    from trio_ollama.api import generation

    def broken(*args: object) -> dict[str, int]:
        raise RuntimeError("metrics are broken")

    monkeypatch.setattr(generation, "metrics", broken)  # runs at the last chunk, after output
    chunks = await ndjson(await post(server, "/api/generate", {"model": "tiny", "prompt": "x"}))
    assert chunks[0]["response"] == "fake1 "
    assert chunks[-1] == {"error": "internal error: RuntimeError: metrics are broken"}
    r = await post(server, "/api/generate", {"model": "tiny", "prompt": "x", "stream": False})
    assert (r.status_code, await r.get_json()) == (
        500,
        {"error": "internal error: RuntimeError: metrics are broken"},
    )
    monkeypatch.undo()
    r = await post(server, "/api/generate", {"model": "tiny", "prompt": "x", "stream": False})
    assert r.status_code == 200
    await idle(server.scheduler)


async def test_a_request_template_that_fails_to_execute_is_a_400(server: Server) -> None:
    body = {"model": "tiny", "prompt": "x", "suffix": "y", "stream": False,
            "template": '{{ .Prompt }}{{ .Suffix }}{{ template "nope" }}'}  # fmt: skip
    r = await post(server, "/api/generate", body)
    assert r.status_code == 400
    assert (await r.get_json())["error"].startswith("template error: ")


@pytest.mark.parametrize("suffix", [False, True])
async def test_a_template_that_calls_itself_forever_is_a_400(server: Server, suffix: bool) -> None:
    forever = '{{ define "r" }}{{ .Prompt }}{{ .Suffix }}{{ template "r" . }}{{ end }}'
    body = {"model": "tiny", "prompt": "x", "stream": False,
            "template": forever + '{{ template "r" . }}'}  # fmt: skip
    if suffix:
        body["suffix"] = "y"
    r = await post(server, "/api/generate", body)
    assert r.status_code == 400
    assert "exceeded maximum template depth (100)" in (await r.get_json())["error"]


async def test_a_runner_that_dies_before_output_is_a_500(server: Server) -> None:
    server.engines.config = FakeConfig(crash_after_tokens=1)
    r = await post(server, "/api/generate", {"model": "tiny", "prompt": "x", "stream": False})
    assert (r.status_code, await r.get_json()) == (500, {"error": "runner process exited"})


@pytest.mark.parametrize("read_first", [True, False])
async def test_a_client_that_hangs_up_frees_its_slot_at_once(
    server: Server, read_first: bool
) -> None:
    """The ASGI conversation of a client that goes away mid-stream, or before any of the body
    (the test client of Quart cannot hang up cleanly, so the test speaks ASGI itself)."""
    server.engines.config = FakeConfig(tokens_per_second=10)  # the answer would take 100 s
    hang_up = trio.Event()
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": SLOW_GENERATE.encode(), "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" or not read_first:
            hang_up.set()

    with trio.fail_after(5):
        await server.app(http_scope("POST", "/api/generate"), receive, send)
    assert sent[0]["status"] == 200
    if read_first:
        assert b"fake1" in sent[1]["body"]
    await idle(server.scheduler)
    assert not server.engines.made[-1].active, "the runner stopped generating for nobody"


async def test_a_stream_never_read_ends_with_its_request(server: Server) -> None:
    """Even an ASGI server that neither reads nor closes the response body cannot leak the
    stream: its producer belongs to the request, and goes when the request's call returns."""
    server.engines.config = FakeConfig(tokens_per_second=10)
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": SLOW_GENERATE.encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            raise trio.BrokenResourceError("the socket is gone")  # as a dead connection would

    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        await server.app(http_scope("POST", "/api/generate"), receive, send)
    assert sent[0]["status"] == 200
    await idle(server.scheduler)
    assert not server.engines.made[-1].active


async def test_a_stream_longer_than_any_server_timeout_reaches_its_client(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Quart cuts a response off after RESPONSE_TIMEOUT (60 s by default), silently: the stream
    just ends; anycorn drops a connection idle for its keep-alive timeout (30 s). In virtual
    time, `serve` on a loopback port and a real HTTP client: an answer of 100 tokens at one a
    second arrives whole, the last line 100 s after the first."""
    settings = tiny_settings(tmp_path, OLLAMA_NUM_PARALLEL="1")
    body = {"model": "tiny", "prompt": "hi", "options": {"num_predict": 100}}
    timed: list[tuple[float, dict[str, Any]]] = []
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=1)
        async with (
            httpx.AsyncClient(base_url=served.url, timeout=None) as client,
            client.stream("POST", "/api/generate", json=body) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    timed.append((trio.current_time(), json.loads(line)))
        served.stop.set()
    assert [chunk.get("response") for _, chunk in timed[:-1]] == [
        f"fake{i} " for i in range(1, 101)
    ]
    last_at, last = timed[-1]
    assert last["done"] and last["done_reason"] == "length" and last["eval_count"] == 100
    assert last_at - timed[0][0] >= 99


async def test_streams_from_many_clients_share_one_runner(server: Server) -> None:
    results: list[list[dict[str, Any]]] = []

    async def one() -> None:
        r = await post(server, "/api/generate", {"model": "tiny", "prompt": "hi"})
        results.append(await ndjson(r))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(one)
    assert len(results) == 4 and all(r[-1]["done_reason"] == "length" for r in results)
    assert len(server.engines.made) == 1, "one load, shared"


async def test_the_get_routes_answer(server: Server) -> None:
    client = server.app.test_client()
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("/", lambda: client.get("/")),
        ("/api/version", lambda: client.get("/api/version")),
        ("/api/tags", lambda: client.get("/api/tags")),
        ("/v1/models", lambda: client.get("/v1/models")),
    ]
    for path, call in calls:
        assert (await call()).status_code == 200, path
    assert (await client.get("/nowhere")).status_code == 404


# ----- cross-site requests: a page from a foreign origin cannot drive the server


FOREIGN = "http://evil.example"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/create", b'{"model": "pwned", "from": "tiny"}'),
        ("POST", "/api/copy", b'{"source": "tiny", "destination": "pwned"}'),
        ("POST", "/api/generate", b'{"model": "tiny", "prompt": "x"}'),
        ("DELETE", "/api/delete", b'{"model": "tiny"}'),
        ("GET", "/api/tags", b""),
        ("OPTIONS", "/api/chat", b""),
    ],
)
async def test_a_foreign_origin_is_refused_everywhere(
    server: Server, method: str, path: str, body: bytes
) -> None:
    # text/plain: what a browser sends cross-site without asking first.
    headers = {"Origin": FOREIGN, "Content-Type": "text/plain"}
    if method == "OPTIONS":
        headers["Access-Control-Request-Method"] = "POST"
    async with server.app.test_client().request(path, method=method, headers=headers) as call:
        await call.send(body)
        await call.send_complete()
        r = await call.as_response()
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers
    names = [
        m["name"]
        for m in (await (await server.app.test_client().get("/api/tags")).get_json())["models"]
    ]
    assert names == ["tiny:latest"], "nothing was created, copied or deleted"


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "https://127.0.0.1", "app://obsidian.md", "tauri://x"]
)
async def test_local_and_app_origins_are_served_with_cors_headers(
    server: Server, origin: str
) -> None:
    r = await server.app.test_client().get("/api/tags", headers={"Origin": origin})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == origin
    preflight = await server.app.test_client().options(
        "/api/chat", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin


async def test_ollama_origins_extends_the_allowed_list(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"OLLAMA_MODELS": str(tmp_path / "m"), "OLLAMA_ORIGINS": "https://*.example.org"}
    )
    async with open_scheduler(settings, runner_factory=Engines(), cores=2) as scheduler:
        app = create_app(Service(settings, Store(tmp_path / "m"), scheduler))
        ok = await app.test_client().get("/api/tags", headers={"Origin": "https://a.example.org"})
        bad = await app.test_client().get("/api/tags", headers={"Origin": "https://example.com"})
    assert (ok.status_code, bad.status_code) == (200, 403)


# ----- names no store could hold are client errors, not OS errors


LONG = "h" * 300 + "/ns/m:t"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/api/generate", {"model": LONG, "prompt": "x"}, 404, f"model '{LONG}' not found"),
        ("POST", "/api/show", {"model": LONG}, 404, f"model '{LONG}' not found"),
        ("POST", "/api/embed", {"model": LONG, "input": "x"}, 404,
         f'model "{LONG}" not found, try pulling it first'),
        ("POST", "/api/create", {"model": LONG, "from": "tiny"}, 400, "invalid model name"),
        ("POST", "/api/copy", {"source": "tiny", "destination": LONG}, 400,
         f'destination "{LONG}" is invalid'),
        ("DELETE", "/api/delete", {"model": LONG}, 400, f'name "{LONG}" is invalid'),
        ("POST", "/api/chat", {"model": LONG, "messages": []}, 400, "model is required"),
    ],
)  # fmt: skip
async def test_names_too_long_for_any_file_system_are_4xx(
    server: Server, method: str, path: str, body: Any, status: int, message: str
) -> None:
    headers = {"Content-Type": "application/json"}
    async with server.app.test_client().request(path, method=method, headers=headers) as call:
        await call.send(json.dumps(body).encode())
        await call.send_complete()
        r = await call.as_response()
    assert (r.status_code, await r.get_json()) == (status, {"error": message})


@pytest.mark.parametrize(
    ("every", "size", "cut_after"),
    [
        (10.0, 1, 60),  # a byte every 10 s: cut after the first minute
        (1.0, 32 * 1024, 0),  # 32 KiB a second: 2 s more allowed each second, so never cut
        (1.0, 8 * 1024, 120),  # 8 KiB a second: half a second more each second; cut at 120 s
    ],
)
async def test_a_body_that_drips_in_is_cut_off_and_a_slow_one_is_not(
    server: Server, autojump_clock: Any, every: float, size: int, cut_after: float
) -> None:
    """In virtual time: a body gets 60 s plus one for each 16 KiB received."""
    sent: list[dict[str, Any]] = []
    chunks = 200  # a whole body takes 200 s at one chunk a second
    given = 0
    last_chunk_at = math.inf

    async def receive() -> dict[str, Any]:
        nonlocal given, last_chunk_at
        await trio.sleep(every)
        given += 1
        if size > 1 and given == chunks:  # the last chunk ends a JSON value
            last_chunk_at = trio.current_time()
            return {"type": "http.request", "body": b" " * (size - 2) + b"{}", "more_body": False}
        return {"type": "http.request", "body": b" " * size, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    started = trio.current_time()
    await server.app(http_scope("POST", "/api/generate"), receive, send)
    took = trio.current_time() - started
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    if size == 32 * 1024:
        # Read whole, then refused for what it says, not for how slowly it came.
        # (The time after the last chunk is not asserted: a body this size is decoded on a
        # worker thread, and the autojump clock jumps while a thread runs.)
        assert sent[0]["status"] == 404 and body["error"].endswith("not found")
        assert last_chunk_at - started == pytest.approx(200)
    else:
        assert sent[0]["status"] == 408
        assert body["error"].startswith("request body too slow")
        assert abs(took - cut_after) <= every, took


# ----- manifests the store did not write


def manifest_of(tmp_models: Path, name: str) -> Path:
    return tmp_models / "manifests" / "registry.ollama.ai" / "library" / name / "latest"


BROKEN = ["link out of the store", "link to nowhere", "not JSON"]


def broken_manifest(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """The manifest of "broken", made `kind`; and a file outside the store a link may reach."""
    path = manifest_of(tmp_path / "models", "broken")
    path.parent.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for clients")
    if kind == "not JSON":
        path.write_text("{not json")
    else:
        path.symlink_to(secret if kind == "link out of the store" else tmp_path / "nowhere")
    return path, secret


@pytest.mark.parametrize("kind", BROKEN)
async def test_a_broken_manifest_is_a_clear_4xx_and_can_be_removed(
    server: Server, tmp_path: Path, kind: str
) -> None:
    models = tmp_path / "models"
    path, secret = broken_manifest(tmp_path, kind)
    r = await post(server, "/api/show", {"model": "broken"})
    assert r.status_code == 400
    error = (await r.get_json())["error"]
    assert error.startswith("model is corrupt: ") and "not for clients" not in error
    r = await post(server, "/api/copy", {"source": "broken", "destination": "stolen"})
    assert r.status_code == 400
    assert not manifest_of(models, "stolen").exists()
    async with server.app.test_client().request("/api/delete", method="DELETE") as call:
        await call.send(b'{"model": "broken"}')
        await call.send_complete()
        deleted = await call.as_response()
    assert deleted.status_code == 200
    assert not path.exists() and not path.is_symlink()
    assert secret.read_text() == "not for clients", "the link's target is untouched"
    tags = await (await server.app.test_client().get("/api/tags")).get_json()
    assert [m["name"] for m in tags["models"]] == ["tiny:latest"]


@pytest.mark.parametrize("kind", BROKEN)
async def test_create_replaces_a_broken_manifest(server: Server, tmp_path: Path, kind: str) -> None:
    path, secret = broken_manifest(tmp_path, kind)
    r = await post(server, "/api/create", {"model": "broken", "from": "tiny", "stream": False})
    assert (r.status_code, await r.get_json()) == (200, {"status": "success"})
    assert not path.is_symlink() and json.loads(path.read_text())["layers"]
    assert secret.read_text() == "not for clients", "the link's target is untouched"
    r = await post(server, "/api/show", {"model": "broken"})
    assert r.status_code == 200


async def test_a_heavy_request_template_stops_and_never_stalls_the_others(server: Server) -> None:
    body = {"model": "tiny", "prompt": "x", "stream": False,
            "template": "{{ range 20000000 }}x{{ end }}{{ .Prompt }}"}  # fmt: skip
    answered: list[str] = []

    async def heavy() -> None:
        r = await post(server, "/api/generate", body)
        assert r.status_code == 400
        assert "exceeded the budget of 1000000 steps" in (await r.get_json())["error"]
        answered.append("heavy")

    async def light() -> None:
        await trio.sleep(0.05)  # while the heavy template renders
        r = await server.app.test_client().get("/api/version")
        assert r.status_code == 200
        answered.append("light")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heavy)
        nursery.start_soon(light)
    assert answered == ["light", "heavy"], "the event loop was never blocked"


async def test_num_ctx_zero_on_embeddings(server: Server) -> None:
    # The model loads with its own context, and the input, measured against the num_ctx asked
    # for, is refused (Ollama's `embed-api-truncate/input_after_truncate_error`).
    r = await post(server, "/api/embed", {"model": "tiny", "input": "hi",
                                          "options": {"num_ctx": 0}})  # fmt: skip
    assert r.status_code == 400
    error = "input after truncation exceeds maximum context length"
    assert await r.get_json() == {"error": error}
    (runner,) = server.scheduler.running()
    assert runner.options.num_ctx == 128, "the tiny GGUF's context length"
    # The legacy endpoint does not truncate: it embeds with the model's context.
    r = await post(server, "/api/embeddings", {"model": "tiny", "prompt": "hi",
                                               "options": {"num_ctx": 0}})  # fmt: skip
    assert r.status_code == 200 and len((await r.get_json())["embedding"]) == 8


async def test_a_linked_folder_in_the_store_carries_nothing_out(
    server: Server, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    library = tmp_path / "models" / "manifests" / "registry.ollama.ai" / "library"
    (library / "dirlink").symlink_to(outside, target_is_directory=True)
    (outside / "latest").write_text((library / "tiny" / "latest").read_text())
    r = await post(server, "/api/show", {"model": "dirlink"})
    assert r.status_code == 400
    r = await post(server, "/api/copy", {"source": "tiny", "destination": "dirlink:new"})
    assert r.status_code == 400
    assert not (outside / "new").exists(), "nothing was written outside the store"
    tags = await (await server.app.test_client().get("/api/tags")).get_json()
    assert [m["name"] for m in tags["models"]] == ["tiny:latest"]


async def test_tool_call_arguments_are_decoded_with_the_depth_bound(server: Server) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = {"model": "tiny", "messages": [
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "1", "type": "function",
                         "function": {"name": "f", "arguments": deep}}]},
        {"role": "user", "content": "hi"}]}  # fmt: skip
    r = await post(server, "/v1/chat/completions", body)
    assert r.status_code == 400
    assert (await r.get_json())["error"]["message"] == "invalid tool call arguments"


@pytest.mark.parametrize(
    ("template", "status", "error"),
    [
        # 400 MB of output from a 1 KB template: stopped at the output cap.
        ("{{ range 400000 }}" + "x" * 1000 + "{{ end }}", 400, "output exceeds 67108864"),
        # Go refuses a width past a million; the prompt renders, the answer streams.
        ('{{ printf "%99999999d" 5 }}{{ .Prompt }}', 200, ""),
        # Nested past the parser's stack: the request's own template, a client error.
        ("{{ if 1 }}" * 300 + "x" + "{{ end }}" * 300, 400, "template error: "),
    ],
)
async def test_request_templates_cannot_exhaust_the_server(
    server: Server, template: str, status: int, error: str
) -> None:
    body = {"model": "tiny", "prompt": "x", "stream": False, "template": template}
    r = await post(server, "/api/generate", body)
    assert r.status_code == status, await r.get_data()
    if error:
        message = (await r.get_json())["error"]
        assert message.startswith("template error: ") and error in message, message


async def test_the_priority_field_reaches_the_scheduler_on_every_route(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both slots busy; a generate (priority 10), a chat (5) and an OpenAI chat (0) queue in
    that order, and get their slots in the opposite one."""
    from contextlib import asynccontextmanager

    granted: list[int | None] = []
    real = server.scheduler.acquire

    @asynccontextmanager
    async def spy(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with real(*args, **kwargs) as lease:
            granted.append(args[3] if len(args) > 3 else kwargs.get("priority"))
            yield lease

    monkeypatch.setattr(server.scheduler, "acquire", spy)
    server.engines.config = FakeConfig(tokens_per_second=20)
    slow = {"model": "tiny", "prompt": "x", "options": {"num_predict": 10}}
    quick = {"options": {"num_predict": 2}, "stream": False}
    queued = [
        ("/api/generate", {"model": "tiny", "prompt": "y", "priority": 10, **quick}),
        ("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "y"}],
                       "priority": 5, **quick}),
        ("/v1/chat/completions", {"model": "tiny", "max_tokens": 2, "priority": 0,
                                  "messages": [{"role": "user", "content": "y"}]}),
    ]  # fmt: skip
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(post, server, "/api/generate", slow)
        await until(lambda: len(granted) == 2)
        for waiting, (path, body) in enumerate(queued, 1):
            nursery.start_soon(post, server, path, body)
            await until(lambda n=waiting: server.scheduler.waiting == n)  # type: ignore[misc]
    assert granted == [None, None, 0, 5, 10]


# ----- what a request works out once per model


async def test_a_models_prompt_and_spec_are_worked_out_once_per_version(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template parse and the GGUF read go to a worker thread the first time a model (by
    name and manifest digest) is asked for, not on every request; a changed model is new."""
    import trio_ollama.api.access as access_module
    from trio_ollama.prompt import CACHED_TEMPLATE_BYTES, ModelPrompt

    calls = {"prompt": 0, "spec": 0}
    real_of, real_spec = ModelPrompt.of, access_module.model_spec

    def counted_of(details: Any, template: str | None = None) -> ModelPrompt:
        calls["prompt"] += 1
        return real_of(details, template)

    def counted_spec(details: Any) -> ModelSpec:
        calls["spec"] += 1
        return real_spec(details)

    monkeypatch.setattr(ModelPrompt, "of", counted_of)
    monkeypatch.setattr(access_module, "model_spec", counted_spec)
    short = {"num_predict": 2}
    chat = {"model": "tiny", "stream": False, "options": short,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    for _ in range(2):
        r = await post(server, "/api/generate", {"model": "tiny", "prompt": "hi", "options": short})
        assert r.status_code == 200
        assert (await post(server, "/api/chat", chat)).status_code == 200
    assert calls == {"prompt": 1, "spec": 1}

    # A request's own template is the request's: parsed each time, never kept.
    own = {"model": "tiny", "prompt": "hi", "template": "Q: {{ .Prompt }}", "options": short}
    for _ in range(2):
        assert (await post(server, "/api/generate", own)).status_code == 200
    assert calls == {"prompt": 3, "spec": 1}

    # A copy is another name; a model created anew over the old name is another digest.
    assert (
        await post(server, "/api/copy", {"source": "tiny", "destination": "twin"})
    ).status_code == 200
    r = await post(server, "/api/generate", {"model": "twin", "prompt": "hi", "options": short})
    assert r.status_code == 200 and (await ndjson(r))[-1]["model"] == "twin"
    assert calls == {"prompt": 4, "spec": 2}
    changed = {"model": "tiny", "from": "tiny", "system": "Be brief.", "stream": False}
    assert (await post(server, "/api/create", changed)).status_code == 200
    render = {"model": "tiny", "stream": False, "_debug_render_only": True,
              "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    rendered = (await (await post(server, "/api/chat", render)).get_json())["_debug_info"]
    assert "Be brief." in rendered["rendered_template"]
    assert calls["prompt"] == 5
    assert (await post(server, "/api/chat", chat)).status_code == 200
    assert calls == {"prompt": 5, "spec": 3}

    # A huge template is parsed each time, not kept (prompt.py keeps none of those either).
    huge = "{{/* " + "x" * CACHED_TEMPLATE_BYTES + " */}}" + CHATML
    big = {"model": "big", "from": "tiny", "template": huge, "stream": False}
    assert (await post(server, "/api/create", big)).status_code == 200
    for _ in range(2):
        assert (await post(server, "/api/chat", {**chat, "model": "big"})).status_code == 200
    assert calls == {"prompt": 7, "spec": 4}
