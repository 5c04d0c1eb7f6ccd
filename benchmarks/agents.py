"""Real coding agents against trio-ollama: Claude Code (`claude -p`), Codex (`codex exec`, through
a configured provider and through `--oss`) and the OpenAI Agents SDK, each in its print or exec
mode and bounded in time; and, second mode, the time to first token of an agent's first and
second turn against llama-server given the same prompt.

Nothing is installed by this script. The clients go outside the repository (Claude Code 2.1.197
is the last release that runs on node 20; later ones ask for node 22):

    npm install --prefix /tmp/agents @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0
    python3 -m venv /tmp/agents/venv && /tmp/agents/venv/bin/pip install openai-agents==0.24.0

    .venv/bin/python -m benchmarks.agents clients [--prefix /tmp/agents] [--timeout 600]
                                                  [--only claude,codex,codex-oss,agents-sdk]
                                                  [--capture DIR]
    .venv/bin/python -m benchmarks.agents ttft [--rounds 3] [--llama-server PATH]

`clients` starts `trio-ollama serve` on loopback with a temporary store holding the tools model
(`smollm2-tools`: SmolLM2-135M with a ChatML template that has a tools section, as in
docs/agents.md), at OLLAMA_CONTEXT_LENGTH=8192 (SmolLM2's trained context), and puts a recording
proxy on loopback in front of it. Each client runs in a fresh temporary folder and home, and the
script prints its exit status, seconds, whether its answer is well formed (its own output parses
and every answer the proxy saw passes the official SDK's types: `anthropic`, `openai`), and its
version. `--capture DIR` writes every request the proxy saw, one JSON file a client, with the
values of credential headers replaced: tests/data/agents/ was made so.

`ttft` is described at `ttft_run`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anycorn
import anycorn.config
import attrs
import httpx
import trio

from benchmarks.serve import (
    LlamaServer,
    free_port,
    llama_server_binary,
    load_average,
    run_level,
    stop,
    wait_until_up,
)
from tests.agents import check_answer, model_requests
from tests.templates_with_tools import TOOLS_MODEL, TOOLS_TEMPLATE
from trio_ollama.api.anthropic import messages_request as anthropic_request
from trio_ollama.api.openai_responses import responses_request
from trio_ollama.bench.echo import request_body
from trio_ollama.cpus import available_cpus
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import (
    DEFAULT_MODEL,
    ensure_default_model,
    fetch_default_gguf,
)

NUM_CTX = 8192  # SmolLM2's trained context
ROOT = Path(__file__).resolve().parent.parent
# Headers whose values are credentials: recorded by name only.
SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "proxy-authorization", "openai-api-key"}
# Not forwarded: the proxy's own connection, and compression (the recorder reads the answers).
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding",
               "keep-alive"}  # fmt: skip


# ----- the server


@contextmanager
def tools_server(log: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`trio-ollama serve` on loopback with a temporary store holding the tools model."""
    models = Path(tempfile.mkdtemp(prefix="agents-models-"))
    store = Store(models)
    ensure_default_model(store)
    store.create(TOOLS_MODEL, CreateRequest(from_=DEFAULT_MODEL, template=TOOLS_TEMPLATE))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models),
                "OLLAMA_CONTEXT_LENGTH": str(NUM_CTX), "OLLAMA_KEEP_ALIVE": "-1",
                "OLLAMA_NOPRUNE": "1", **(env or {})}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "trio_ollama", "serve"], env=full_env,
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(url + "/api/version")
        httpx.post(url + "/api/generate", json={"model": TOOLS_MODEL}, timeout=120)
        yield url
    finally:
        stop(proc)
        shutil.rmtree(models, ignore_errors=True)


# ----- the recording proxy


@attrs.define
class Recorder:
    """An ASGI app that forwards every request to `upstream` as it came and streams the answer
    back, recording both (a client that hangs on a slow answer is the client's to time out)."""

    upstream: str
    exchanges: list[dict[str, Any]] = attrs.field(factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await request_body(scope, receive, send)
        if body is None:
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        query = scope["query_string"].decode("latin-1")
        exchange: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"] + (f"?{query}" if query else ""),
            "headers": {k: "<redacted>" if k in SECRET_HEADERS else v for k, v in headers},
            "body": _body(body),
        }
        self.exchanges.append(exchange)
        forwarded = [(k, v) for k, v in headers if k not in HOP_HEADERS]
        answer = bytearray()
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream(
                scope["method"], self.upstream + exchange["path"], headers=forwarded, content=body
            ) as response,
        ):
            exchange["status"] = response.status_code
            exchange["response_type"] = response.headers.get("content-type", "")
            out = [(k.encode(), v.encode()) for k, v in response.headers.items()
                   if k.lower() not in HOP_HEADERS]  # fmt: skip
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": out})  # fmt: skip
            async for chunk in response.aiter_raw():
                answer += chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        exchange["response"] = answer.decode("utf-8", "replace")


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


async def serve_recorder(
    recorder: Recorder, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `recorder` on a free loopback port until cancelled; starts with its URL."""
    port = free_port()
    config = anycorn.config.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None

    async def http(*, task_status: trio.TaskStatus[Any]) -> None:
        await anycorn.serve(recorder, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        await nursery.start(http)
        task_status.started(f"http://127.0.0.1:{port}")


# ----- the clients

PROMPT = "What does hello.py print? Answer in one sentence."
HELLO = 'print("Hello from trio-ollama")\n'


@attrs.frozen
class Client:
    """One client run: its command line and environment, and how to read its output."""

    name: str
    argv: list[str]
    env: dict[str, str]
    version_argv: list[str]

    def answer(self, stdout: str) -> str | None:
        """The client's final answer from its output, or None when the output is not the
        well-formed result of a completed run."""
        try:
            if self.name == "claude-code":
                result = json.loads(stdout)
                ok = result.get("type") == "result" and result.get("is_error") is False
                return str(result["result"]) if ok else None
            lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        except (ValueError, KeyError):
            return None
        if self.name == "agents-sdk":
            runs = [line for line in lines if isinstance(line.get("final_output"), str)]
            return " | ".join(r["final_output"] for r in runs) if len(runs) == 4 else None
        # codex exec --json: events, the last answer an agent_message, then turn.completed.
        if not any(line.get("type") == "turn.completed" for line in lines):
            return None
        said = [line["item"].get("text", "") for line in lines
                if line.get("type") == "item.completed"
                and line.get("item", {}).get("type") == "agent_message"]  # fmt: skip
        return said[-1] if said else None


def clients(prefix: Path, url: str, home: Path) -> list[Client]:
    """Every client, pointed at `url` (the proxy), with `home` as its home folder."""
    bin_ = prefix / "node_modules" / ".bin"
    base = {"HOME": str(home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8", "NO_COLOR": "1"}
    claude = {
        **base,
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_AUTH_TOKEN": "dummy",
        # Its side requests (titles, summaries) go to the "small fast" model: the same one here.
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": TOOLS_MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": TOOLS_MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{TOOLS_MODEL}"\nmodel_provider = "trio-ollama"\n\n'
        f"[model_providers.trio-ollama]\n"
        f'name = "trio-ollama"\nbase_url = "{url}/v1"\nwire_api = "responses"\n'
    )
    oss_home = home / ".codex-oss"
    oss_home.mkdir(parents=True, exist_ok=True)
    codex = {**base, "CODEX_HOME": str(codex_home)}
    exec_ = [str(bin_ / "codex"), "exec", "--json", "--skip-git-repo-check", "--sandbox",
             "read-only"]  # fmt: skip
    python = prefix / "venv" / "bin" / "python"
    return [
        Client("claude-code",
               [str(bin_ / "claude"), "-p", PROMPT, "--model", TOOLS_MODEL,
                "--output-format", "json"],
               claude, [str(bin_ / "claude"), "--version"]),
        Client("codex", [*exec_, PROMPT], codex, [str(bin_ / "codex"), "--version"]),
        Client("codex-oss",
               # The name as /api/tags lists it: --oss pulls any other.
               [*exec_, "--oss", "--local-provider", "ollama", "-m", f"{TOOLS_MODEL}:latest",
                PROMPT],
               {**base, "CODEX_HOME": str(oss_home), "CODEX_OSS_BASE_URL": f"{url}/v1"},
               [str(bin_ / "codex"), "--version"]),
        Client("agents-sdk",
               [str(python), "-P", str(ROOT / "benchmarks" / "agents_sdk_run.py"), f"{url}/v1",
                TOOLS_MODEL],
               base,
               [str(python), "-c", "from importlib.metadata import version as v; "
                "print('openai-agents', v('openai-agents'), 'openai', v('openai'))"]),
    ]  # fmt: skip


@attrs.frozen
class Outcome:
    name: str
    status: int | None  # None: stopped at the time limit
    seconds: float
    answer: str | None
    problems: list[str]  # answers the SDK types refuse, and requests the server refused
    requests: int
    version: str
    stderr: str

    @property
    def well_formed(self) -> bool:
        return self.answer is not None and not self.problems


async def run_client(client: Client, recorder: Recorder, allowed: float, work: Path) -> Outcome:
    version = await trio.run_process(client.version_argv, capture_stdout=True, check=False,
                                     capture_stderr=True, env=client.env)  # fmt: skip
    first = len(recorder.exchanges)
    started = time.perf_counter()
    done: subprocess.CompletedProcess[bytes] | None = None
    with trio.move_on_after(allowed):
        done = await trio.run_process(
            client.argv, env=client.env, cwd=work, check=False, stdin=b"",
            capture_stdout=True, capture_stderr=True,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    seen = recorder.exchanges[first:]
    problems = []
    for exchange in seen:
        where = f"{exchange['method']} {exchange['path']}"
        if exchange.get("status", 0) >= 400 and exchange["path"].startswith("/v1/"):
            problems.append(f"{where}: {exchange['status']} {exchange.get('response', '')[:200]}")
        problems += [f"{where}: {p}" for p in check_answer(
            exchange["path"], exchange.get("status", 0), exchange.get("response_type", ""),
            exchange.get("response", ""))]  # fmt: skip
    stdout = done.stdout.decode("utf-8", "replace") if done else ""
    return Outcome(
        name=client.name,
        status=done.returncode if done else None,
        seconds=seconds,
        answer=client.answer(stdout) if done and done.returncode == 0 else None,
        problems=problems,
        requests=len(seen),
        version=version.stdout.decode().strip(),
        stderr=(done.stderr.decode("utf-8", "replace") if done else "")[-2000:],
    )


async def clients_run(upstream: str, args: argparse.Namespace) -> list[Outcome]:
    recorder = Recorder(upstream)
    outcomes = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_recorder, recorder)
        wanted = args.only.split(",")
        for name in wanted:
            work = Path(tempfile.mkdtemp(prefix=f"agents-{name}-"))
            try:
                (work / "hello.py").write_text(HELLO)
                home = work / "home"
                [client] = [c for c in clients(args.prefix, url, home) if c.name == name]
                first = len(recorder.exchanges)
                outcome = await run_client(client, recorder, args.timeout, work)
                outcomes.append(outcome)
                print_outcome(outcome)
                if args.capture:
                    args.capture.mkdir(parents=True, exist_ok=True)
                    kept = [{k: v for k, v in e.items() if k not in ("response", "response_type")}
                            for e in recorder.exchanges[first:]]  # fmt: skip
                    (args.capture / f"{name}.json").write_text(json.dumps(kept, indent=1) + "\n")
            finally:
                shutil.rmtree(work, ignore_errors=True)
        nursery.cancel_scope.cancel()
    return outcomes


def print_outcome(o: Outcome) -> None:
    status = "timed out" if o.status is None else f"exit {o.status}"
    formed = "yes" if o.well_formed else "NO"
    print(f"{o.name:<12} {status:<10} {o.seconds:7.1f} s  {o.requests:3d} requests  "
          f"well-formed: {formed}  ({o.version})", flush=True)  # fmt: skip
    if o.answer is not None:
        print(f"    answer: {o.answer[:300]!r}")
    for problem in o.problems[:10]:
        print(f"    problem: {problem[:400]}")
    if not o.well_formed:
        print("    stderr: " + o.stderr[-1500:].replace("\n", "\n    "))


# ----- turn 2: does the second turn pay for the first one's prompt again?

TURN_TOKENS = 16
NEXT_QUESTION = "Thank you. Now say the same in French."


@attrs.frozen
class Case:
    """A captured agent request and how to carry its conversation one turn on."""

    name: str
    path: str
    body: dict[str, Any]

    def fresh(self, k: int) -> dict[str, Any]:
        """The request for turn 1 of round `k`: streamed, greedy, `TURN_TOKENS` long, and with a
        new first line so that no server answers it from an earlier round's cache."""
        body = json.loads(json.dumps(self.body))
        body.update(stream=True, temperature=0)
        mark = f"Session {k:03d}. "
        if self.path == "/v1/messages":
            body["max_tokens"] = TURN_TOKENS
            system = body["system"]
            if isinstance(system, str):
                body["system"] = mark + system
            else:
                system[0]["text"] = mark + system[0]["text"]
        else:
            body["max_output_tokens"] = TURN_TOKENS
            first = body["input"][0]
            if isinstance(first["content"], str):
                first["content"] = mark + first["content"]
            else:
                first["content"][0]["text"] = mark + first["content"][0]["text"]
        return body

    def next_turn(self, body: dict[str, Any], answer: str) -> dict[str, Any]:
        """Turn 2: the same request with the first answer and a new user message after it."""
        body = json.loads(json.dumps(body))
        if self.path == "/v1/messages":
            body["messages"] += [
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
                {"role": "user", "content": [{"type": "text", "text": NEXT_QUESTION}]},
            ]
        else:
            body["input"] += [
                {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": answer}]},
                {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": NEXT_QUESTION}]},
            ]  # fmt: skip
        return body


def captured_case(name: str, client: str) -> Case:
    exchange = next(e for _, e in model_requests(client) if e["body"].get("tools"))
    return Case(name, exchange["path"].split("?")[0], exchange["body"])


def rendered(url: str, case: Case, body: dict[str, Any]) -> str:
    """The prompt trio-ollama renders for `body` (Ollama's `_debug_render_only`)."""
    if case.path == "/v1/messages":
        native, _ = anthropic_request(body)
    else:
        native, _ = responses_request(body)
    native.pop("think", None)  # the tools model does not think: the routes drop it too
    native.update(stream=False, _debug_render_only=True)
    reply = httpx.post(url + "/api/chat", json=native, timeout=60)
    reply.raise_for_status()
    text: str = reply.json()["_debug_info"]["rendered_template"]
    return text


def prompt_counters(url: str) -> tuple[float, float]:
    """The server's prompt tokens so far, and how many of them came from a slot's cache."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = {}
    for name in ("trio_ollama_prompt_tokens_total", "trio_ollama_prompt_tokens_cached_total"):
        found[name] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                          if line.startswith(name + "{"))  # fmt: skip
    return found["trio_ollama_prompt_tokens_total"], found["trio_ollama_prompt_tokens_cached_total"]


@attrs.frozen
class Turn:
    ttft: float
    prompt_tokens: int
    cached_tokens: int
    answer: str


def trio_turn(url: str, case: Case, body: dict[str, Any]) -> Turn:
    """One streamed turn through the agent's own API; TTFT is the first text or call delta."""
    before = prompt_counters(url)
    sent = time.perf_counter()
    first: float | None = None
    text = []
    with httpx.stream("POST", url + case.path, json=body, timeout=1800) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            event = json.loads(line[5:])
            delta = event.get("delta")
            if event["type"] == "content_block_delta":
                delta = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            elif not event["type"].endswith(".delta"):
                continue
            if delta:
                first = first if first is not None else time.perf_counter() - sent
                text.append(delta)
    after = prompt_counters(url)
    if first is None:
        raise RuntimeError(f"{case.name}: no token in the answer")
    return Turn(first, int(after[0] - before[0]), int(after[1] - before[1]), "".join(text))


class LlamaTarget:
    """llama-server, given the prompts as text (`/completion`, `cache_prompt`)."""

    name = "llama-server"

    def __init__(self, binary: Path, log: Path) -> None:
        self.server = LlamaServer(binary, 1, log, [], num_ctx=NUM_CTX)

    def turn(self, prompt: str) -> Turn:
        streamed = trio.run(run_level, self.server, [prompt], TURN_TOKENS).streams[0]
        return Turn(streamed.ttft, streamed.prompt_tokens, streamed.cached_tokens, "")

    def close(self) -> None:
        self.server.close()


class InProcessLlama:
    """llama.cpp through llama-cpp-python's `Llama` in this process, where no llama-server was
    built: the same weights and threads, one sequence of `NUM_CTX`, and the same reuse of a
    common prefix that llama-server makes (`Llama.generate` keeps the longest common prefix
    of its last tokens)."""

    name = "llama.cpp (in-process)"

    def __init__(self) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(fetch_default_gguf()), n_ctx=NUM_CTX, n_batch=512,
            n_threads=available_cpus(), n_threads_batch=available_cpus(),
            flash_attn=False, verbose=False,
        )  # fmt: skip

    def turn(self, prompt: str) -> Turn:
        tokens = self.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        cached = 0
        for a, b in zip(self.llm.input_ids[: self.llm.n_tokens], tokens[:-1], strict=False):
            if a != b:
                break
            cached += 1
        sent = time.perf_counter()
        first = None
        chunks = self.llm.create_completion(tokens, max_tokens=TURN_TOKENS, temperature=0,
                                            repeat_penalty=1.0, stream=True)  # fmt: skip
        for _chunk in chunks:
            first = first if first is not None else time.perf_counter() - sent
        assert first is not None
        return Turn(first, len(tokens), cached, "")

    def close(self) -> None:
        self.llm.close()


def ttft_run(args: argparse.Namespace, logs: Path) -> None:
    """Turn 1 and turn 2 of a captured Claude Code request (/v1/messages) and a captured Codex
    request (/v1/responses), each a long system prompt with tools, streamed, greedy, 16 tokens
    out, at the model's trained context (8,192 tokens, one slot on both servers, the machine's
    CPUs as threads). Turn 1 starts a new conversation (a new first line every round); turn 2
    resends it with the first answer and a new user message, as an agent does. llama-server
    gets the same prompts as text, rendered by trio-ollama (its `_debug_render_only`), and its
    prompt token count must equal trio-ollama's (a difference is printed). Cached tokens: read
    from trio-ollama's /metrics, and llama-server's `timings.cache_n`. Without a llama-server
    binary (docs/performance.md builds one), llama.cpp runs in this process in its place."""
    binary = llama_server_binary(args.llama_server)
    cases = [captured_case("claude-code", "claude-code"), captured_case("codex", "codex")]
    env = {"OLLAMA_NUM_PARALLEL": "1", "TRIO_OLLAMA_METRICS": "1"}
    llama: LlamaTarget | InProcessLlama
    if binary.is_file():
        llama = LlamaTarget(binary, logs / "llama-server.log")
    else:
        print(f"llama-server: not found at {binary} (see docs/performance.md); llama.cpp "
              "through llama-cpp-python in its place\n")  # fmt: skip
        llama = InProcessLlama()
    rows: list[tuple[str, int, str, Turn, Turn, tuple[float, float, float]]] = []
    try:
        with tools_server(logs / "server.log", env) as url:
            for k in range(args.rounds):
                for case in cases:
                    load = os.getloadavg()
                    body1 = case.fresh(k)
                    t1 = trio_turn(url, case, body1)
                    body2 = case.next_turn(body1, t1.answer)
                    t2 = trio_turn(url, case, body2)
                    rows.append((case.name, k, "trio-ollama", t1, t2, load))
                    print_turns(rows[-1])
                    l1 = llama.turn(rendered(url, case, body1))
                    l2 = llama.turn(rendered(url, case, body2))
                    rows.append((case.name, k, llama.name, l1, l2, os.getloadavg()))
                    print_turns(rows[-1])
                    for mine, theirs in ((t1, l1), (t2, l2)):
                        if mine.prompt_tokens != theirs.prompt_tokens:
                            print(f"    token counts differ: {mine.prompt_tokens} against "
                                  f"{theirs.prompt_tokens}")  # fmt: skip
    finally:
        llama.close()
    print("\nmedians of the rounds (seconds):")
    for name in dict.fromkeys(r[0] for r in rows):
        for target in dict.fromkeys(r[2] for r in rows):
            mine = [r for r in rows if r[0] == name and r[2] == target]
            if not mine:
                continue
            t1 = statistics.median(r[3].ttft for r in mine)
            t2 = statistics.median(r[4].ttft for r in mine)
            print(f"  {name:<12} {target:<24} turn 1 {t1:8.2f}  turn 2 {t2:8.2f}  "
                  f"turn 2 / turn 1 {t2 / t1:5.2f}")  # fmt: skip


def print_turns(row: tuple[str, int, str, Turn, Turn, tuple[float, float, float]]) -> None:
    name, k, target, t1, t2, load = row
    print(f"{name:<12} round {k}  {target:<24} turn 1: TTFT {t1.ttft:7.2f} s, prompt "
          f"{t1.prompt_tokens} ({t1.cached_tokens} cached)  turn 2: TTFT {t2.ttft:7.2f} s, "
          f"prompt {t2.prompt_tokens} ({t2.cached_tokens} cached)  "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("clients")
    run.add_argument("--prefix", type=Path, default=Path("/tmp/agents"))
    run.add_argument("--timeout", type=float, default=600)
    run.add_argument("--only", default="claude-code,codex,codex-oss,agents-sdk")
    run.add_argument("--capture", type=Path, default=None)
    turns = sub.add_parser("ttft")
    turns.add_argument("--rounds", type=int, default=3)
    turns.add_argument("--llama-server", type=Path, default=None)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="agents-logs-"))
    if args.mode == "clients":
        with tools_server(logs / "server.log") as upstream:
            load = os.getloadavg()
            outcomes = trio.run(clients_run, upstream, args)
        print(f"\nload average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"at the end: {load_average()}")  # fmt: skip
        print(f"server log: {logs / 'server.log'}")
        sys.exit(0 if all(o.status == 0 and o.well_formed for o in outcomes) else 1)
    ttft_run(args, logs)


if __name__ == "__main__":
    main()
