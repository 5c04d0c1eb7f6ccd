"""The real server (subprocess, loopback port, temporary store, real model) driven by real
clients: raw httpx, the official `ollama` package and the `openai` package."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.procs import alive, poll_until
from tests.server import ServerProcess, free_port, running_server
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model
from trio_ollama.version import OLLAMA_API_VERSION, __version__

# The real server in a subprocess, with the real model.
pytestmark = pytest.mark.slow

MODEL = "smollm2:135m"
# Prompts for tests that count tokens or expect "length": greedy, they cannot end early.
COUNTING = ", ".join(str(i) for i in range(1, 21)) + ","  # raw
COUNT_ON = "Continue this list up to 100, numbers only: " + COUNTING  # through the template
LONG_PROMPT = " ".join(
    f"Fact {i}: the river {n} flows through the valley of {n}ia." for i, n in
    enumerate(["Amber", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Grove", "Heath"] * 9)
)  # fmt: skip


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Path:
    root = tmp_path_factory.mktemp("api") / "models"
    ensure_default_model(Store(root))
    return root


@pytest.fixture(scope="session")
def url(models: Path) -> Iterator[str]:
    with running_server(models, {"OLLAMA_NUM_PARALLEL": "2"}) as base:
        yield base


@pytest.fixture(scope="session")
def client(url: str) -> ollama.Client:
    return ollama.Client(host=url)


def post(url: str, path: str, body: Any = None, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(url + path, content=content, timeout=120)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def loaded(url: str) -> list[str]:
    """The models `/api/ps` shows loaded."""
    return [m["name"] for m in httpx.get(url + "/api/ps", timeout=30).json()["models"]]


def running(url: str) -> tuple[int, int]:
    """The requests running and waiting on the server's runners, as `/api/ps` counts them."""
    models = httpx.get(url + "/api/ps", timeout=30).json()["models"]
    return (
        sum(m["requests_running"] for m in models),
        sum(m["requests_waiting"] for m in models),
    )


def partial_blobs(models: Path) -> list[Path]:
    return [p for p in (models / "blobs").iterdir() if p.name.startswith("sha256-partial-")]


# ----- basics


def test_root_and_version(url: str) -> None:
    r = httpx.get(url)
    assert (r.status_code, r.text) == (200, "Ollama is running")
    assert httpx.head(url).status_code == 200
    r = httpx.get(url + "/api/version")
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json() == {"version": OLLAMA_API_VERSION}
    # Codex's `--oss` check: the field as semver (a leading "v" trimmed), at least 0.13.4.
    parts = tuple(int(p) for p in r.json()["version"].removeprefix("v").split("."))
    assert len(parts) == 3 and parts >= (0, 13, 4)
    # The package's own version is on every answer, errors included.
    for response in (r, httpx.head(url), httpx.get(url + "/nope")):
        assert response.headers["trio-ollama-version"] == __version__


def test_claude_codes_preconnect_gets_ollamas_404(url: str) -> None:
    """Claude Code sends `HEAD {ANTHROPIC_BASE_URL}/api/hello` at start-up to open a
    connection early and ignores the answer; Ollama has no such route and answers gin's 404,
    so this server does the same (the same text for a GET)."""
    r = httpx.head(url + "/api/hello")
    assert (r.status_code, r.content) == (404, b"")
    r = httpx.get(url + "/api/hello")
    assert (r.status_code, r.text) == (404, "404 page not found")
    assert r.headers["content-type"].startswith("text/plain")
    assert httpx.head(url).status_code == 200  # the preconnect of older versions: the root


def test_tags_and_show(url: str, client: ollama.Client) -> None:
    tags = httpx.get(url + "/api/tags").json()
    entry = next(m for m in tags["models"] if m["name"] == MODEL)
    assert entry["model"] == MODEL and entry["size"] > 98_000_000 and len(entry["digest"]) == 64
    assert entry["details"]["parameter_size"] == "134.52M"
    assert entry["details"]["quantization_level"] == "Q4_1"
    assert "expires_at" not in entry
    listed = client.list()
    assert MODEL in [m.model for m in listed.models]
    shown = client.show(MODEL)
    assert shown.capabilities == ["completion"]
    assert shown.template is not None and "<|im_start|>" in shown.template
    assert shown.modelfile is not None and shown.modelfile.startswith("# Modelfile generated")
    assert shown.parameters is not None and 'stop                           "<|im_start|>"' in (
        shown.parameters
    )
    info = shown.modelinfo or {}
    assert info["general.architecture"] == "llama" and info["llama.block_count"] == 30
    assert info["tokenizer.ggml.tokens"] == []
    verbose = post(url, "/api/show", {"model": MODEL, "verbose": True}).json()
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == 49152
    assert verbose["tensors"][0]["name"]


# ----- generate and chat


def test_generate_with_the_ollama_client(client: ollama.Client) -> None:
    r = client.generate(MODEL, "What is the capital of France?", options={"temperature": 0})
    assert "Paris" in r.response and r.done and r.done_reason == "stop"
    assert r.total_duration and r.load_duration is not None and r.eval_count
    assert r.prompt_eval_duration and r.eval_duration and r.context
    streamed = "".join(
        part.response
        for part in client.generate(
            MODEL, "What is the capital of France?", options={"temperature": 0}, stream=True
        )
    )
    assert streamed == r.response


def test_generate_stream_over_raw_http(url: str) -> None:
    # Greedy, on a raw counting prompt the model cannot end early: five tokens, always.
    options = {"num_predict": 5, "temperature": 0}
    r = post(url, "/api/generate", {"model": MODEL, "prompt": COUNTING, "raw": True,
                                    "options": options})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    chunks = lines(r)
    assert all(not c["done"] for c in chunks[:-1]) and chunks[-1]["done"]
    final = chunks[-1]
    assert final["response"] == "" and final["done_reason"] == "length"
    assert final["eval_count"] == 5 and final["created_at"].endswith("Z")
    for key in ("total_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0


def test_generate_context_round_trip_and_raw(url: str) -> None:
    first = post(
        url,
        "/api/generate",
        {
            "model": MODEL,
            "prompt": "My name is Ada.",
            "stream": False,
            "options": {"num_predict": 8, "temperature": 0},
        },
    ).json()
    again = post(url, "/api/generate", {"model": MODEL, "prompt": "What is my name?",
                                        "context": first["context"], "stream": False,
                                        "options": {"num_predict": 8, "temperature": 0}}
                 ).json()  # fmt: skip
    assert again["done"] and again["context"][: len(first["context"])] == first["context"]
    options = {"num_predict": 6, "temperature": 0}
    body = {"model": MODEL, "prompt": COUNTING, "raw": True, "stream": False, "options": options}
    raw = post(url, "/api/generate", body).json()
    assert raw["response"].startswith(" 21, 2") and "context" not in raw


def test_chat_with_the_ollama_client(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    r = client.chat(MODEL, messages=messages, options={"temperature": 0})
    assert r.message.role == "assistant" and "Paris" in r.message.content
    assert r.done_reason == "stop" and r.eval_count
    parts = list(client.chat(MODEL, messages=messages, options={"temperature": 0}, stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content
    assert parts[-1].done and parts[-1].message.content == ""


def test_prompt_eval_count_is_the_whole_prompt_even_when_cached(client: ollama.Client) -> None:
    # Ollama counts every prompt token; the prompt cache only makes the second one faster.
    messages = [{"role": "user", "content": "Name three rivers."}]
    options = {"temperature": 0, "num_predict": 2}
    first = client.chat(MODEL, messages=messages, options=options)
    again = client.chat(MODEL, messages=messages, options=options)
    assert first.prompt_eval_count == again.prompt_eval_count > 10


def test_format_json_schema(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = client.chat(
        MODEL,
        messages=[{"role": "user", "content": "Which city is the capital of France? JSON."}],
        format=schema,
        options={"temperature": 0, "num_predict": 60},
    )
    assert set(json.loads(r.message.content)) == {"city"}


def test_load_and_unload_shortcuts_and_ps(url: str, client: ollama.Client) -> None:
    r = post(url, "/api/generate", {"model": MODEL, "keep_alive": -1})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["done_reason"] == "load"
    ps = httpx.get(url + "/api/ps").json()["models"]
    entry = next(m for m in ps if m["name"] == MODEL)
    assert entry["details"]["quantization_level"] == "Q4_1" and entry["digest"]
    assert entry["size"] > 0 and entry["size_vram"] == 0 and entry["context_length"] == 4096
    assert entry["expires_at"].startswith(("22", "23", "9999"))  # keep-alive forever: far off
    r = post(url, "/api/chat", {"model": MODEL, "messages": [], "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"
    assert r.json()["message"] == {"role": "assistant", "content": ""}
    poll_until(lambda: MODEL not in loaded(url), 10, "the model did not unload")
    assert post(url, "/api/chat", {"model": MODEL, "messages": []}).json()["done_reason"] == "load"
    assert [m.model for m in client.ps().models] == [MODEL]


@pytest.mark.parametrize(
    ("keep_alive", "seconds"), [("10m", 600), (30, 30), (42.5, 42.5), ("1h30m", 5400)]
)
def test_keep_alive_forms(url: str, keep_alive: Any, seconds: float) -> None:
    before = time.time()
    post(url, "/api/generate", {"model": MODEL, "keep_alive": keep_alive})
    entry = httpx.get(url + "/api/ps").json()["models"][0]
    from datetime import datetime

    expires = datetime.fromisoformat(entry["expires_at"]).timestamp()
    assert math.isclose(expires - before, seconds, abs_tol=3)


# ----- embeddings


def test_embed_and_legacy_embeddings(client: ollama.Client, url: str) -> None:
    r = client.embed(MODEL, input=["The cat sat.", "Stocks fell."])
    assert len(r.embeddings) == 2 and all(len(v) == 576 for v in r.embeddings)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-6) for v in r.embeddings)
    assert r.prompt_eval_count and r.total_duration
    short = client.embed(MODEL, input="The cat sat.", dimensions=64)
    assert len(short.embeddings[0]) == 64
    assert math.isclose(math.fsum(x * x for x in short.embeddings[0]), 1.0, rel_tol=1e-6)
    legacy = post(url, "/api/embeddings", {"model": MODEL, "prompt": "The cat sat."}).json()
    assert len(legacy["embedding"]) == 576
    assert not math.isclose(math.fsum(x * x for x in legacy["embedding"]), 1.0, rel_tol=1e-3)
    assert post(url, "/api/embed", {"model": MODEL, "input": []}).json() == {
        "model": MODEL,
        "embeddings": [],
    }


def test_embed_truncation_as_ollamas_integration_test(client: ollama.Client) -> None:
    """Ollama's `embed-api-truncate` cases that fail (integration/embed_test.go), on the real
    model: `num_ctx` 0 or 1 leaves no room once the BOS and EOS places are kept, so the input
    is refused even with `truncate`; without it, the input is simply too long."""
    question = "why is the sky blue?"
    for num_ctx, truncate, error in [
        (0, True, "input after truncation exceeds maximum context length"),
        (1, True, "input after truncation exceeds maximum context length"),
        (0, False, "input exceeds maximum context length"),
        (3, False, "input exceeds maximum context length"),
    ]:
        with pytest.raises(ollama.ResponseError) as info:
            client.embed(MODEL, input=question, truncate=truncate, options={"num_ctx": num_ctx})
        assert (info.value.status_code, info.value.error) == (400, error), num_ctx
    # Their passing neighbours: cut to fit, or whole.
    assert client.embed(MODEL, input=question, options={"num_ctx": 3}).prompt_eval_count == 1
    assert len(client.embed(MODEL, input="why", options={"num_ctx": 16}).embeddings) == 1


# ----- the store over HTTP


def test_blobs_create_copy_delete(url: str, default_gguf: Path, client: ollama.Client) -> None:
    data = b"some license text"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 404
    wrong = "sha256:" + "0" * 64
    r = post(url, f"/api/blobs/{wrong}", raw=data)
    assert r.status_code == 400 and r.json()["error"].startswith('digest mismatch, expected "')
    assert post(url, f"/api/blobs/{digest}", raw=data).status_code == 201
    assert post(url, f"/api/blobs/{digest}", raw=data).status_code == 200
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 200
    gguf_digest = "sha256:" + hashlib.sha256(default_gguf.read_bytes()).hexdigest()
    assert httpx.head(f"{url}/api/blobs/{gguf_digest}").status_code == 200  # already stored
    create = {"model": "pirate", "files": {"m.gguf": gguf_digest},
              "system": "You are a pirate.", "parameters": {"top_k": 7}}  # fmt: skip
    r = post(url, "/api/create", create)
    statuses = [c["status"] for c in lines(r)]
    assert statuses[0] == "parsing GGUF" and statuses[-1] == "success"
    assert "using autodetected template chatml" in statuses and "writing manifest" in statuses
    shown = post(url, "/api/show", {"model": "pirate"}).json()
    assert shown["system"] == "You are a pirate." and "top_k" in shown["parameters"]
    r = post(url, "/api/create", {"model": "pirate2", "from": "pirate", "stream": False,
                                  "template": "{{ .Prompt }}"})  # fmt: skip
    assert r.json() == {"status": "success"}
    assert client.copy("pirate2", "crew/pirate:v2").status == "success"
    assert "crew/pirate:v2" in [m.model for m in client.list().models]
    for name in ("pirate", "pirate2", "crew/pirate:v2"):
        assert client.delete(name).status == "success"
    assert "pirate:latest" not in [m.model for m in client.list().models]


# ----- errors: Ollama's statuses and texts (its `server/routes.go`)


ERRORS = [
    ("/api/generate", b"", 400, "missing request body"),
    ("/api/chat", b"", 400, "missing request body"),
    ("/api/generate", {"model": "", "prompt": "x"}, 404, "model '' not found"),
    ("/api/generate", {"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
    ("/api/chat", {"model": ""}, 400, "model is required"),
    ("/api/chat", {"model": "nope", "messages": []}, 404, "model 'nope' not found"),
    ("/api/embed", {"model": "nope", "input": "x"}, 404,
     'model "nope" not found, try pulling it first'),
    ("/api/embeddings", {"model": ""}, 400, "model is required"),
    ("/api/show", {}, 400, "model is required"),
    ("/api/show", {"model": "nope"}, 404, "model 'nope' not found"),
    ("/api/copy", {"source": "nope", "destination": "x"}, 404, 'model "nope" not found'),
    ("/api/copy", {"source": "../x", "destination": "x"}, 400, 'source "../x" is invalid'),
    ("/api/generate", {"model": MODEL, "prompt": "x", "raw": True, "system": "s"}, 400,
     "raw mode does not support template, system, or context"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "think": True}, 400,
     '"smollm2:135m" does not support thinking'),
    ("/api/generate", {"model": MODEL, "prompt": "x", "suffix": "y"}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support insert"),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f"}}]}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support tools"),
    ("/api/embed", {"model": MODEL, "input": 5}, 400, "invalid input type"),
    ("/api/embed", {"model": MODEL, "input": LONG_PROMPT * 4, "truncate": False,
                    "options": {"num_ctx": 64}}, 400, "input exceeds maximum context length"),
    ("/api/create", {"model": "x"}, 400, "neither 'from' or 'files' was specified"),
    ("/api/create", {"model": "x", "from": MODEL, "template": "{{ .Prompt"}, 400,
     "template error"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "keep_alive": "10"}, 400,
     'time: missing unit in duration "10"'),
    ("/api/generate", {"model": MODEL, "prompt": "x", "options": {"num_ctx": -5}}, 400, "num_ctx"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "options": {"temperature": "hot"}}, 400,
     "temperature"),
    ("/api/chat", {"model": MODEL, "messages": "hi"}, 400, "messages"),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "bot", "content": "x"}]}, 400, "role"),
    ("/api/generate", {"model": MODEL, "prompt": 5}, 400, "prompt"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "format": "yaml"}, 400, "invalid format"),
    ("/api/generate", b"{not json", 400, ""),
    ("/api/generate", b"[1, 2]", 400, ""),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "message"), ERRORS)
def test_errors(url: str, path: str, body: Any, status: int, message: str) -> None:
    r = post(url, path, raw=body if isinstance(body, bytes) else None, body=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and error
    assert message in error


def test_http_level_errors(url: str) -> None:
    assert httpx.request("DELETE", url + "/api/delete", json={"model": "nope"}).status_code == 404
    bad = httpx.request("DELETE", url + "/api/delete", json={"model": "a/b/c/d"})
    assert (bad.status_code, bad.json()["error"]) == (400, 'name "a/b/c/d" is invalid')
    assert httpx.get(url + "/api/show").status_code == 405
    assert httpx.get(url + "/api/nothing").status_code == 404
    assert httpx.head(f"{url}/api/blobs/sha256:abc").status_code == 400
    assert post(url, "/api/blobs/md5-1", raw=b"x").json()["error"] == "invalid digest format"
    forbidden = httpx.get(url + "/api/tags", headers={"Host": "evil.example.com"})
    assert forbidden.status_code == 403
    local = httpx.get(url + "/api/tags", headers={"Host": "myhost.local:1234"})
    assert local.status_code == 200
    cors = httpx.options(
        url + "/api/chat",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert cors.status_code == 204
    assert cors.headers["access-control-allow-origin"] == "http://localhost:3000"
    no_cors = httpx.get(url + "/api/tags", headers={"Origin": "https://evil.example.com"})
    assert no_cors.status_code == 403 and "access-control-allow-origin" not in no_cors.headers
    nowhere = f"127.0.0.1:{free_port()}/library/llama3.2"  # never registry.ollama.ai
    pull = post(url, "/api/pull", {"model": nowhere, "insecure": True, "stream": False})
    assert pull.status_code == 500
    assert pull.json()["error"].startswith("pull model manifest: ")


def test_error_after_output_is_a_final_line(url: str) -> None:
    # A schema the runner cannot turn into a grammar fails after the load, before any token.
    r = post(url, "/api/generate", {"model": MODEL, "prompt": "x",
                                    "format": {"type": "object", "properties": 5}})  # fmt: skip
    assert r.status_code in (400, 500) and "error" in r.json()


# ----- OpenAI compatibility


def test_openai_chat_completions_models_and_embeddings(url: str) -> None:
    oa = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    messages: Any = [{"role": "user", "content": "What is the capital of France?"}]
    r = oa.chat.completions.create(model=MODEL, messages=messages, temperature=0)
    assert "Paris" in (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == "stop" and r.usage and r.usage.completion_tokens > 0
    chunks = list(
        oa.chat.completions.create(
            model=MODEL, messages=messages, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    done = oa.completions.create(model=MODEL, prompt=COUNT_ON, max_tokens=5, temperature=0)
    assert done.choices[0].text and done.choices[0].finish_reason == "length"
    assert done.usage is not None and done.usage.completion_tokens == 5
    e = oa.embeddings.create(model=MODEL, input=["hello", "world"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 576
    assert MODEL in [m.id for m in oa.models.list()]
    assert oa.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model=MODEL, messages=[])
    assert "[] is too short - 'messages'" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="nope", messages=messages)


def test_openai_sse_ends_with_done(url: str) -> None:
    body = {"model": MODEL, "stream": True, "max_tokens": 3, "temperature": 0,
            "messages": [{"role": "user", "content": COUNT_ON}]}  # fmt: skip
    r = post(url, "/v1/chat/completions", body)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    events = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    assert events[0]["object"] == "chat.completion.chunk"
    assert events[-1]["choices"][0]["finish_reason"] == "length"


# ----- concurrency, disconnects, long streams (servers of their own, or the shared one)


def first_token_seconds(url: str, prompt: str = "Say hi.") -> float:
    started = time.monotonic()
    with httpx.stream("POST", url + "/api/generate", timeout=120,
                      json={"model": MODEL, "prompt": prompt}) as r:  # fmt: skip
        for _ in r.iter_lines():
            return time.monotonic() - started
    raise AssertionError("no output")


def hang_up_after(
    url: str,
    body: dict[str, Any],
    lines_wanted: int,
    seconds: float,
    stop: threading.Event | None = None,
) -> None:
    """Start a streaming request and close the connection after some lines or some time, or at
    the first line after `stop` is set."""
    got = 0
    deadline = time.monotonic() + seconds
    try:
        timeout = httpx.Timeout(120, read=seconds)
        with httpx.stream("POST", url + "/api/generate", json=body, timeout=timeout) as r:
            for _ in r.iter_lines():
                got += 1
                if got >= lines_wanted or time.monotonic() > deadline:
                    break
                if stop is not None and stop.is_set():
                    break
    except httpx.ReadTimeout:
        pass  # nothing came in time: hanging up is the point


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_client_disconnects_free_the_slot(real_server: ServerProcess) -> None:
    """On the shared server with default settings: one slot."""
    server = real_server
    url = server.url
    first_token_seconds(url)  # loaded and warm
    # How long a free slot takes to answer on this machine now, with room: it may be shared.
    free = 2 + 3 * first_token_seconds(url)
    endless = {"model": MODEL, "prompt": COUNTING, "raw": True,
               "options": {"num_predict": 3000, "temperature": 0}}  # fmt: skip
    # 1. mid-stream: after a few tokens the client goes away.
    hang_up_after(url, endless, lines_wanted=5, seconds=30)
    assert first_token_seconds(url) < free, "the slot came back at once"
    # 2. during a long prompt (~1,000 tokens, ~5 s to process).
    long = {"model": MODEL, "prompt": LONG_PROMPT, "options": {"num_predict": 1}}
    started = time.monotonic()
    hang_up_after(url, long, lines_wanted=1, seconds=0.5)
    assert time.monotonic() - started < free
    assert first_token_seconds(url) < free
    # 3. while queued behind a running request, on a one-slot runner.
    holder = threading.Thread(target=hang_up_after, args=(url, endless, 10_000, 6))
    holder.start()
    poll_until(lambda: running(url) == (1, 0), 10, "the holder never got the slot")
    queued_started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/api/generate", json={"model": MODEL, "prompt": "queued"},
                   timeout=1)  # fmt: skip
    holder.join()
    assert time.monotonic() - queued_started < 7
    assert first_token_seconds(url) < free, "the abandoned queued request took nothing"
    # 4. a non-streaming request whose client gives up: nothing may go on generating.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/api/generate", json={**endless, "stream": False}, timeout=1)
    assert first_token_seconds(url) < free
    (runner,) = server.runners()
    before = cpu_seconds(runner)
    time.sleep(1.5)  # a window to measure the runner's CPU time in: nothing to wait for
    assert cpu_seconds(runner) - before < 0.3, "an orphaned generation is still running"


def test_concurrent_requests_share_a_batch(models: Path) -> None:
    """With OLLAMA_NUM_PARALLEL=4, four streams decode side by side in one runner.

    Behaviour, not speed (benchmarks/runner.py measures that): every stream has produced its
    first token before any of them finishes, and all four give the greedy answer of one alone.
    """
    with running_server(models, {"OLLAMA_NUM_PARALLEL": "4"}) as url:
        body = {"model": MODEL, "prompt": COUNTING, "raw": True,
                "options": {"num_predict": 120, "temperature": 0}}  # fmt: skip
        alone = post(url, "/api/generate", {**body, "stream": False}).json()["response"]
        firsts: list[float] = []
        ends: list[float] = []
        texts: list[str] = []

        def one() -> None:
            text = ""
            with httpx.stream("POST", url + "/api/generate", json=body, timeout=120) as r:
                for line in r.iter_lines():
                    if not text:
                        firsts.append(time.monotonic())
                    text += json.loads(line).get("response", "") if line else ""
            ends.append(time.monotonic())
            texts.append(text)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert texts == [alone] * 4
        assert max(firsts) < min(ends), "all four were generating at the same time"
        assert len(httpx.get(url + "/api/ps").json()["models"]) == 1


def test_a_generation_past_its_context_keeps_streaming_until_the_client_leaves(url: str) -> None:
    """Greedy counting never ends by itself: with a 256-token context of which 200 are kept,
    the runner shifts its context again and again and the stream goes on, with no last line,
    until the client hangs up; then its slot is free. (That no server timeout cuts a long
    stream is `test_api_inprocess.py`'s, in virtual time.)"""
    options = {"num_predict": 100_000, "num_ctx": 256, "num_keep": 200, "temperature": 0,
               "repeat_penalty": 1.0}  # fmt: skip
    body = {"model": MODEL, "prompt": COUNTING, "raw": True, "options": options}
    # The prompt's 40-odd tokens and some 215 generated fill the context; from then on each
    # shift drops (256 - 200) // 2 = 28 tokens: by 320 the runner has shifted four times.
    wanted = 320
    lines: list[dict[str, Any]] = []
    with httpx.stream("POST", url + "/api/generate", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
            if len(lines) >= wanted:
                break
    assert len(lines) >= wanted, f"the stream ended early: {lines[-1:]}"
    assert not any(chunk.get("done") or "error" in chunk for chunk in lines), lines[-1]
    # The hung-up stream let its slot go.
    poll_until(lambda: running(url)[0] == 0, 10, "the runner went on generating for nobody")


def test_chat_history_is_truncated_to_the_context(url: str) -> None:
    history: list[dict[str, str]] = [{"role": "system", "content": "Answer in one word."}]
    for i in range(40):
        history.append({"role": "user", "content": f"Remember fact {i}: {LONG_PROMPT[:200]}"})
        history.append({"role": "assistant", "content": "Noted."})
    history.append({"role": "user", "content": "What colour is the sky?"})
    body = {"model": MODEL, "messages": history, "stream": False,
            "options": {"num_ctx": 256, "num_predict": 3}}  # fmt: skip
    r = post(url, "/api/chat", body)
    assert r.status_code == 200, r.text
    assert 0 < r.json()["prompt_eval_count"] <= 256, "old turns were dropped to fit num_ctx"
    r = post(url, "/api/chat", {**body, "truncate": False})
    assert r.status_code == 400
    assert r.json()["error"] == "the input length exceeds the context length"


def test_queue_full_is_503(models: Path) -> None:
    env = {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_MAX_QUEUE": "1"}
    with running_server(models, env) as url:
        first_token_seconds(url)
        endless = {"model": MODEL, "prompt": COUNTING, "raw": True,
                   "options": {"num_predict": 3000, "temperature": 0}}  # fmt: skip
        # The holder keeps the slot until the third request has its answer (4 s at most), then
        # hangs up; the waiter then gets the slot and leaves after a line.
        answered = threading.Event()
        holder = threading.Thread(target=hang_up_after, args=(url, endless, 10_000, 4, answered))
        waiter = threading.Thread(target=hang_up_after, args=(url, endless, 1, 3))
        holder.start()
        poll_until(lambda: running(url) == (1, 0), 10, "the holder never got the slot")
        waiter.start()
        poll_until(lambda: running(url) == (1, 1), 10, "the waiter never queued")
        r = post(url, "/api/generate", {"model": MODEL, "prompt": "one too many"})
        answered.set()
        holder.join()
        waiter.join()
        assert r.status_code == 503
        assert r.json() == {
            "error": "server busy, please try again.  maximum pending requests exceeded"
        }


def test_generate_and_chat_on_an_embedding_model(url: str, tmp_path: Path) -> None:
    from tests.ggufs import write_tiny_gguf

    data = write_tiny_gguf(tmp_path / "embed.gguf", pooling_type=1).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert post(url, f"/api/blobs/{digest}", raw=data).status_code == 201
    create = {"model": "embedder", "files": {"embed.gguf": digest}, "stream": False}
    assert post(url, "/api/create", create).json() == {"status": "success"}
    shown = post(url, "/api/show", {"model": "embedder"}).json()
    assert shown["capabilities"] == ["embedding"]
    r = post(url, "/api/generate", {"model": "embedder", "prompt": "x"})
    assert (r.status_code, r.json()["error"]) == (400, '"embedder" does not support generate')
    r = post(
        url, "/api/chat", {"model": "embedder", "messages": [{"role": "user", "content": "x"}]}
    )
    assert (r.status_code, r.json()["error"]) == (400, '"embedder" does not support chat')
    assert (
        httpx.request("DELETE", url + "/api/delete", json={"model": "embedder"}).status_code == 200
    )


def test_sigterm_lets_streams_finish_then_ends_every_runner(models: Path) -> None:

    server = ServerProcess(models)
    try:
        first_token_seconds(server.url)
        runners = server.runners()
        assert len(runners) == 1
        body = {"model": MODEL, "prompt": COUNTING, "raw": True,
                "options": {"num_predict": 300, "temperature": 0}}  # fmt: skip
        final: dict[str, Any] = {}
        with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=60) as r:
            for seen, line in enumerate(r.iter_lines()):
                if seen == 5:
                    server.proc.send_signal(15)  # SIGTERM mid-stream
                if line:
                    final = json.loads(line)
        assert final.get("done") and final["eval_count"] == 300, "the stream ran to its end"
        assert server.proc.wait(timeout=30) == 0, "then the server exited cleanly"
        assert not any(alive(p) for p in runners), "and its runner with it"
    finally:
        server.stop()


def rendered(url: str, path: str, body: dict[str, Any]) -> str:
    r = post(url, path, {**body, "_debug_render_only": True, "stream": False})
    assert r.status_code == 200, r.text
    return str(r.json()["_debug_info"]["rendered_template"])


def test_prompt_rules_system_messages_and_templates(url: str) -> None:
    create = {"model": "briefbot", "from": MODEL, "system": "Be brief.", "stream": False,
              "messages": [{"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Ahoy"}]}  # fmt: skip
    assert post(url, "/api/create", create).json() == {"status": "success"}
    try:
        turn = "<|im_start|>{}\n{}<|im_end|>\n"
        history = turn.format("user", "Hi") + turn.format("assistant", "Ahoy")
        ask = turn.format("user", "Q") + "<|im_start|>assistant\n"
        chat = {"model": "briefbot", "messages": [{"role": "user", "content": "Q"}]}
        # The model's SYSTEM first, then its MESSAGEs, then the conversation.
        assert (
            rendered(url, "/api/chat", chat) == turn.format("system", "Be brief.") + history + ask
        )
        own = {"model": "briefbot", "messages": [{"role": "system", "content": "Own."},
                                                 {"role": "user", "content": "Q"}]}  # fmt: skip
        # A request that starts with its own system message gets no model SYSTEM.
        assert rendered(url, "/api/chat", own) == history + turn.format("system", "Own.") + ask
        generate = {"model": "briefbot", "prompt": "Q"}
        assert rendered(url, "/api/generate", generate) == rendered(url, "/api/chat", chat)
        # A request's system replaces the model's.
        assert rendered(url, "/api/generate", {**generate, "system": "S."}).startswith(
            turn.format("system", "S.") + history
        )
        # A request template (Go syntax) replaces the model's; like Ollama, the model's MESSAGEs
        # still come first, each turn rendered by the legacy (non-.Messages) template.
        legacy = {**generate, "template": "Q: {{ .Prompt }}\nA:{{ .Response }}"}
        assert rendered(url, "/api/generate", legacy) == "Q: Hi\nA:AhoyQ: Q\nA:"
        # A GGUF without a Go template renders through its own Jinja chat template.
        jinja = rendered(url, "/api/chat", {"model": MODEL, "messages": chat["messages"]})
        assert jinja == ask
    finally:
        httpx.request("DELETE", url + "/api/delete", json={"model": "briefbot"})


def test_an_aborted_upload_leaves_nothing_behind(url: str, models: Path) -> None:
    import socket

    data = b"x" * 4_000_000
    digest = hashlib.sha256(data).hexdigest()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        head = f"POST /api/blobs/sha256:{digest} HTTP/1.1\r\nHost: {host}\r\n"
        s.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data[:500_000])
        poll_until(lambda: partial_blobs(models), 5, "the upload never started")
    poll_until(lambda: not partial_blobs(models), 5, "a half-written blob was left in the store")
    assert not (models / "blobs" / f"sha256-{digest}").exists()
    assert httpx.get(url).status_code == 200


# ----- observability, on the real model and a real runner process


def test_metrics_ps_and_a_killed_runner_on_the_real_model(models: Path) -> None:
    """`/metrics` after real requests through the official client; `ps` parsed by that client
    with the queue fields beside; a runner SIGKILLed is counted as crashed."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(server.url + "/metrics", timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
        }  # fmt: skip

    server = ServerProcess(models, {"OLLAMA_NUM_PARALLEL": "2"})
    try:
        client = ollama.Client(host=server.url)
        replies = [
            client.generate(model=MODEL, prompt=COUNTING, raw=True,
                            options={"num_predict": 5, "temperature": 0})
            for _ in range(2)
        ]  # fmt: skip
        ps = client.ps()
        assert [m.model for m in ps.models] == [MODEL]
        [raw] = httpx.get(server.url + "/api/ps").json()["models"]
        assert (raw["requests_running"], raw["requests_waiting"], raw["num_parallel"]) == (0, 0, 2)
        m = scrape()
        key = (("endpoint", "/api/generate"), ("model", MODEL), ("status", "200"))
        assert m["trio_ollama_requests_total", key] == 2
        assert m["trio_ollama_time_to_first_token_seconds_count", (("model", MODEL),)] == 2
        assert m["trio_ollama_generated_tokens_total", (("model", MODEL),)] == 10
        prompt = sum(r.prompt_eval_count or 0 for r in replies)
        assert m["trio_ollama_prompt_tokens_total", (("model", MODEL),)] == prompt
        # The second request found its whole prompt but the last token in the slot's cache.
        cached = m["trio_ollama_prompt_tokens_cached_total", (("model", MODEL),)]
        assert cached == (replies[1].prompt_eval_count or 0) - 1
        kv = m["trio_ollama_runner_memory_bytes", (("kind", "kv"), ("model", MODEL))]
        assert kv > 0 and m["trio_ollama_runner_resident_bytes", (("model", MODEL),)] > 10 * 2**20

        (runner,) = server.runners()
        os.kill(runner, signal.SIGKILL)
        crashed = ("trio_ollama_unloads_total", (("model", MODEL), ("reason", "crashed")))
        poll_until(lambda: scrape().get(crashed) == 1, 20, "the crash was not counted")
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_the_load_generator_agrees_with_the_real_server(url: str, tmp_path: Path) -> None:
    """`trio-ollama bench run` against the real model: its token counts are the server's
    (`eval_count`, `/metrics`: counted from before the run, on this module's server), and the
    result file says so."""
    from prometheus_client.parser import text_string_to_metric_families

    def generated() -> float:
        text = httpx.get(url + "/metrics").text
        return sum(
            s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "trio_ollama_generated_tokens_total"
        )  # fmt: skip

    before = generated()
    out = tmp_path / "bench.json"
    # Counting prompts, greedy: SmolLM2 never ends one early, so 6 tokens is exact.
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(
        json.dumps({"at": i * 0.1, "model": MODEL, "output_tokens": 6,
                    "prompt": ", ".join(str(n) for n in range(1 + 50 * i, 21 + 50 * i)) + ",",
                    "options": {"temperature": 0}}) + "\n"
        for i in range(4)
    ))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "trio_ollama", "bench", "run", "--target", url,
         "--raw", "--set", "load.mode=trace", "--set", f"load.trace={trace}",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    [step] = result["steps"]
    requests = step["requests"]
    assert len(requests) == 4 and all(r["status"] == 200 and not r["error"] for r in requests)
    assert all(r["output_tokens"] == 6 and r["chunks"] >= 1 for r in requests)
    assert generated() - before == 24 == step["summary"]["output_tokens"]
    assert "trace" in done.stdout and "4/4" in done.stdout
