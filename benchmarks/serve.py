"""End-to-end throughput and latency, as a user sees them: trio-ollama serve, llama-server and a
plain in-process batched loop, side by side in one run, on the default model.

    .venv/bin/python -m benchmarks.serve [--clients 1,2,4,8,16] [--tokens 128] [--rounds 3]
                                         [--llama-server PATH] [--parallel 8]
                                         [--modes burst,closed] [--closed-requests 4]
                                         [--decoding-chunks 128,32,8] [--plot FILE.png]

Every stream is greedy, 128 tokens, from a counting prompt (SmolLM2 never ends one early), with
`repeat_penalty` 1 everywhere; prompts differ between clients and rounds, so no round is served
from the previous one's prompt cache. Each level sends one request per client at once; its
aggregate tok/s is the tokens received over the wall time from the first request sent to the last
token received (nothing left out: prompt processing, queueing and stragglers count). A stream
that ends with a different token count is reported and its level left out of the figures.

`--modes closed` adds a closed loop: each client sends `--closed-requests` requests back to back,
asking for 32 to 128 tokens (the same seeded lengths for every target), so that prompts arrive
while other streams decode. `--decoding-chunks` runs one trio-ollama server for each value of
TRIO_OLLAMA_DECODING_PROMPT_CHUNK (prompt tokens a step takes while streams decode) in the same
rounds, and `--plot` draws inter-token p99 against TTFT p50 for them and llama-server.

llama-server is the binary built from the llama.cpp vendored in the pinned llama-cpp-python sdist
(docs/performance.md has the build command); without it the rest still runs. Both servers use
`--parallel` slots of 4,096 tokens each and this machine's CPU count as threads; llama-server's
other settings are its defaults (repacked weights included, as the runner decides them on a
machine without AMX: runner/repack.py). `--gguf` serves other weights on every target (a Q4_0
copy of the default model shows what repacking gives; add the `no-repack` target to see it).

Also measured: time to first token for a 1,000-token prompt (prompt processing), and each
server's memory: the runner's (or llama-server's) resident set and the KV bytes it reports.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import httpx
import trio

from trio_ollama.cpus import available_cpus
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model, fetch_default_gguf
from trio_ollama.store.modelfile import CreateRequest

NUM_CTX = 4096
MODEL = "smollm2:135m"
DEFAULT_LLAMA_SERVER = Path(__file__).parent.parent / "build" / "llama-server" / "bin"


def counting(start: int, count: int = 20) -> str:
    """A raw prompt SmolLM2 continues without ever emitting end-of-sequence."""
    return ", ".join(str(i) for i in range(start, start + count)) + ","


def llama_server_binary(given: Path | None) -> Path:
    """Where llama-server is: `--llama-server`, else `$LLAMA_SERVER`, else the build's."""
    return given or Path(os.environ.get("LLAMA_SERVER", DEFAULT_LLAMA_SERVER / "llama-server"))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class Stream:
    """One request as its client saw it."""

    sent: float
    stamps: list[float] = attrs.field(factory=list)  # arrival of each chunk with tokens
    tokens: int = 0  # as the server counted them in its last message
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of the prompt, read from the slot's cache (llama-server says)

    @property
    def ttft(self) -> float:
        return self.stamps[0] - self.sent

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]


# ----- the targets: each answers `stream(client, prompt, n)` with a Stream


class Target:
    name = ""
    url = ""
    proc: subprocess.Popen[bytes] | None = None

    async def stream(self, client: httpx.AsyncClient, prompt: str, n: int) -> Stream:
        raise NotImplementedError

    def memory(self) -> tuple[int, int]:
        """(resident bytes of the process that holds the model, KV bytes it reported)."""
        raise NotImplementedError


class TrioOllama(Target):
    name = "trio-ollama"

    def __init__(
        self,
        parallel: int,
        log: Path,
        *,
        metrics: bool = True,
        name: str = "",
        env: dict[str, str] | None = None,
        gguf: Path | None = None,
    ) -> None:
        if not metrics:
            self.name = "no-metrics"  # TRIO_OLLAMA_METRICS=0: what recording them costs
        self.name = name or self.name
        more = env or {}
        self.models = Path(tempfile.mkdtemp(prefix="bench-models-"))
        if gguf is None:
            ensure_default_model(Store(self.models))
        else:  # the same name, other weights
            store = Store(self.models)
            store.create(MODEL, CreateRequest(files={gguf.name: store.import_file(gguf)}))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(self.models),
               "OLLAMA_NUM_PARALLEL": str(parallel), "OLLAMA_CONTEXT_LENGTH": str(NUM_CTX),
               "OLLAMA_KEEP_ALIVE": "-1",
               "TRIO_OLLAMA_METRICS": "1" if metrics else "0", **more}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trio_ollama", "serve"], env=env,
            stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )  # fmt: skip
        wait_until_up(self.url + "/api/version")
        httpx.post(self.url + "/api/generate", json={"model": MODEL}, timeout=120)

    async def stream(self, client: httpx.AsyncClient, prompt: str, n: int) -> Stream:
        body = {"model": MODEL, "prompt": prompt, "raw": True,
                "options": {"num_predict": n, "temperature": 0, "repeat_penalty": 1.0}}  # fmt: skip
        got = Stream(time.perf_counter())
        async with client.stream("POST", self.url + "/api/generate", json=body) as r:
            async for line in r.aiter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                if chunk.get("response"):
                    got.stamps.append(time.perf_counter())
                if chunk.get("done"):
                    got.tokens = chunk.get("eval_count", 0)
                    got.prompt_tokens = chunk.get("prompt_eval_count", 0)
                if "error" in chunk:
                    raise RuntimeError(chunk["error"])
        return got

    def memory(self) -> tuple[int, int]:
        assert self.proc is not None
        runners = children(self.proc.pid)
        rss = sum(resident(pid) for pid in runners)
        kv = re.findall(r"model loaded .*?kv_bytes=(\d+)", self.log.read_text())
        return rss, int(kv[-1]) if kv else 0

    def close(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.models, ignore_errors=True)


class LlamaServer(Target):
    name = "llama-server"

    def __init__(
        self,
        binary: Path,
        parallel: int,
        log: Path,
        extra: list[str],
        num_ctx: int = NUM_CTX,
        gguf: Path | None = None,
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        # Its defaults otherwise: repacked weights where the CPU has kernels for them, as the
        # runner decides (runner/repack.py) on a machine without AMX.
        args = [str(binary), "-m", str(gguf or fetch_default_gguf()), "--host", "127.0.0.1",
                "--port", str(port), "-np", str(parallel), "-c", str(num_ctx * parallel),
                "-t", str(available_cpus()), "--no-webui", "-lv", "4", *extra]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        wait_until_up(self.url + "/health")

    async def stream(self, client: httpx.AsyncClient, prompt: str, n: int) -> Stream:
        body = {"prompt": prompt, "n_predict": n, "temperature": 0, "repeat_penalty": 1.0,
                "stream": True, "cache_prompt": True}  # fmt: skip
        got = Stream(time.perf_counter())
        async with client.stream("POST", self.url + "/completion", json=body) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("content"):
                    got.stamps.append(time.perf_counter())
                if chunk.get("stop"):
                    got.tokens = chunk.get("tokens_predicted", 0)
                    got.prompt_tokens = chunk.get("tokens_evaluated", 0)
                    got.cached_tokens = chunk.get("timings", {}).get("cache_n", 0)
        return got

    def memory(self) -> tuple[int, int]:
        assert self.proc is not None
        kv = re.findall(r"KV buffer size\s*=\s*([\d.]+) MiB", self.log.read_text())
        return resident(self.proc.pid), int(sum(float(x) for x in kv) * 1024 * 1024)

    def close(self) -> None:
        stop(self.proc)


def load_average() -> str:
    """The machine's load averages over 1, 5 and 15 minutes, as a benchmark prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_until_up(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ----- the plain loop: llama.cpp driven directly, in a process of its own


def plain_batched(n_streams: int, n_tokens: int, prompts: list[str]) -> list[Stream]:
    """The tightest batched loop llama-cpp-python allows, at the runner's settings: all prompts
    in one batch, then one token per sequence per decode, greedy, a KV cache per sequence."""
    import ctypes

    import llama_cpp as L

    quiet = L.llama_log_callback(lambda *args: None)
    L.llama_log_set(quiet, ctypes.c_void_p(0))
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.use_extra_bufts = False  # as the runner loads it
    model = L.llama_model_load_from_file(str(fetch_default_gguf()).encode(), mparams)
    vocab = L.llama_model_get_vocab(model)
    params = L.llama_context_default_params()
    params.n_ctx = NUM_CTX * n_streams
    params.n_seq_max = n_streams
    params.n_batch = params.n_ubatch = 512
    params.kv_unified = False
    params.no_perf = True
    params.n_threads = params.n_threads_batch = available_cpus()
    params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = L.llama_init_from_model(model, params)
    batch = L.llama_batch_init(512, 0, n_streams)
    sampler = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy())
    piece = ctypes.create_string_buffer(256)

    def put(i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    streams = [Stream(time.perf_counter()) for _ in range(n_streams)]
    started = streams[0].sent
    for s in streams:
        s.sent = started
    tokenized = []
    for text in prompts:
        buf = (L.llama_token * 4096)()
        n = L.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, 4096, True, True)
        tokenized.append(list(buf[:n]))
    # Prompts, packed into batches of 512; the last token of each is sampled.
    queue = [(seq, pos, tok) for seq, toks in enumerate(tokenized) for pos, tok in enumerate(toks)]
    last_index: dict[int, int] = {}
    next_token: dict[int, int] = {}
    while queue:
        part, queue = queue[:512], queue[512:]
        last_index.clear()
        for i, (seq, pos, tok) in enumerate(part):
            last = pos == len(tokenized[seq]) - 1
            put(i, tok, pos, seq, last)
            if last:
                last_index[seq] = i
        batch.n_tokens = len(part)
        L.llama_decode(ctx, batch)
        for seq, i in last_index.items():
            next_token[seq] = L.llama_sampler_sample(sampler, ctx, i)
    now = time.perf_counter()
    for seq in next_token:
        streams[seq].stamps.append(now)
        streams[seq].tokens = 1
        streams[seq].prompt_tokens = len(tokenized[seq])
    while any(s.tokens < n_tokens for s in streams):
        live = [seq for seq, s in enumerate(streams) if s.tokens < n_tokens]
        for i, seq in enumerate(live):
            L.llama_token_to_piece(vocab, next_token[seq], piece, 256, 0, False)
            put(i, next_token[seq], len(tokenized[seq]) + streams[seq].tokens - 1, seq, True)
        batch.n_tokens = len(live)
        L.llama_decode(ctx, batch)
        now = time.perf_counter()
        for i, seq in enumerate(live):
            next_token[seq] = L.llama_sampler_sample(sampler, ctx, i)
            streams[seq].stamps.append(now)
            streams[seq].tokens += 1
    L.llama_sampler_free(sampler)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return streams


def run_plain(n_streams: int, n_tokens: int, prompts: list[str]) -> list[Stream]:
    """`plain_batched` in a child process (so that it has the CPUs as a server would)."""
    args = json.dumps({"n": n_streams, "tokens": n_tokens, "prompts": prompts})
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve", "--plain-child", args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return [Stream(**s) for s in json.loads(out.stdout.splitlines()[-1])]


# ----- one level: N clients at once


@attrs.frozen
class Level:
    target: str
    clients: int
    wall: float
    streams: list[Stream]
    expected: list[int]  # each stream's token count, in the order of `streams`
    mode: str = "burst"

    @property
    def complete(self) -> bool:
        return [s.tokens for s in self.streams] == self.expected

    @property
    def tok_s(self) -> float:
        return sum(s.tokens for s in self.streams) / self.wall


async def run_level(target: Target, prompts: list[str], n: int) -> Level:
    """A burst: every prompt sent at once, `n` tokens each."""
    return await run_clients(target, [[(prompt, n)] for prompt in prompts], "burst")


async def run_clients(target: Target, work: list[list[tuple[str, int]]], mode: str) -> Level:
    """Each client sends its (prompt, tokens) requests one after another; all start at once."""
    # A connection per request, for every target alike: llama-server closes kept-alive ones
    # at times (a client would retry; a benchmark should not count that).
    limits = httpx.Limits(max_connections=len(work) + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        streams: list[list[Stream]] = [[] for _ in work]

        async def one(k: int) -> None:
            for prompt, n in work[k]:
                streams[k].append(await target.stream(client, prompt, n))

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(len(work)):
                nursery.start_soon(one, k)
    flat = [s for client_streams in streams for s in client_streams]
    wall = max(s.stamps[-1] for s in flat if s.stamps) - started
    expected = [n for requests in work for _, n in requests]
    return Level(target.name, len(work), wall, flat, expected, mode)


def closed_work(clients: int, requests: int, seed: int) -> list[list[tuple[str, int]]]:
    """Each client's requests for a closed loop: fresh counting prompts, 32 to 128 tokens
    each (seeded, so every target gets the same)."""
    import random

    pick = random.Random(seed)
    return [
        [(counting(7 + 41 * (k * requests + r) + seed), pick.choice((32, 64, 96, 128)))
         for r in range(requests)]
        for k in range(clients)
    ]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


# Prompt-processing samples per round and target (`--pp-samples`): one 1,000-token prompt takes
# about 5 s here, and this machine's noise between two such runs is larger than the differences
# measured.
PP_SAMPLES = 3


def long_prompt(k: int) -> str:
    """About 1,000 tokens (a digit is a token): four-digit numbers, so every k gives the same
    count, and a new first line, so no server serves it from its prompt cache."""
    return f"Round {k:03d}. " + counting(1000 + 1000 * (k % 8), 165)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1,2,4,8,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--pp-samples", type=int, default=PP_SAMPLES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--llama-server", type=Path, default=None)
    # Also "no-metrics": trio-ollama with TRIO_OLLAMA_METRICS=0; "no-repack": with
    # TRIO_OLLAMA_REPACK=0 (no repacked weights).
    parser.add_argument("--targets", default="trio-ollama,llama-server,plain")
    parser.add_argument("--llama-args", default="", help='more llama-server flags: "-fa off"')
    parser.add_argument("--modes", default="burst", help="burst, closed or both: burst,closed")
    parser.add_argument("--closed-requests", type=int, default=4)
    parser.add_argument(
        "--decoding-chunks",
        default="",
        help="TRIO_OLLAMA_DECODING_PROMPT_CHUNK values, a server each: 128,32,8",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="another trio-ollama server, NAME:VAR=VALUE;VAR=VALUE (repeatable)",
    )
    parser.add_argument("--gguf", type=Path, default=None, help="other weights, for all targets")
    parser.add_argument("--plot", type=Path, default=None, help="ITL p99 against TTFT p50 (PNG)")
    parser.add_argument("--plain-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_child:
        spec = json.loads(args.plain_child)
        streams = plain_batched(spec["n"], spec["tokens"], spec["prompts"])
        print(json.dumps([attrs.asdict(s) for s in streams]))
        return
    levels = [int(x) for x in args.clients.split(",")]
    wanted = args.targets.split(",")
    binary = llama_server_binary(args.llama_server)
    if "llama-server" in wanted and not binary.is_file():
        print(f"llama-server: not found at {binary} (see docs/performance.md); left out\n")
        wanted.remove("llama-server")
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    servers: list[Target] = []
    try:
        if "trio-ollama" in wanted:
            servers.append(TrioOllama(args.parallel, logs / "trio-ollama.log", gguf=args.gguf))
        for chunk in [int(x) for x in args.decoding_chunks.split(",") if x]:
            log = logs / f"trio-ollama-{chunk}.log"
            env = {"TRIO_OLLAMA_DECODING_PROMPT_CHUNK": str(chunk)}
            name = f"trio-ollama/{chunk}"
            servers.append(TrioOllama(args.parallel, log, name=name, env=env, gguf=args.gguf))
        for variant in args.variant:
            name, _, settings = variant.partition(":")
            env = dict(kv.split("=", 1) for kv in settings.split(";") if kv)
            log = logs / f"variant-{len(servers)}.log"
            servers.append(TrioOllama(args.parallel, log, name=name, env=env, gguf=args.gguf))
        if "no-repack" in wanted:
            log = logs / "no-repack.log"
            env = {"TRIO_OLLAMA_REPACK": "0"}
            servers.append(
                TrioOllama(args.parallel, log, name="no-repack", env=env, gguf=args.gguf)
            )
        if "no-metrics" in wanted:
            servers.append(TrioOllama(args.parallel, logs / "no-metrics.log", metrics=False))
        if "llama-server" in wanted:
            extra = args.llama_args.split()
            log = logs / "llama-server.log"
            servers.append(LlamaServer(binary, args.parallel, log, extra, gguf=args.gguf))
        results: list[Level] = []
        ttft_long: dict[str, list[float]] = {}
        prompt_counts: dict[str, set[int]] = {}
        modes = args.modes.split(",")
        for round_ in range(args.rounds):
            for n in levels:
                prompts = [counting(1 + 37 * i + 5000 * round_ + 100_000 * n) for i in range(n)]
                if "burst" in modes:
                    for server in servers:
                        results.append(trio.run(run_level, server, prompts, args.tokens))
                    if "plain" in wanted and n <= args.parallel:
                        streams = run_plain(n, args.tokens, prompts)
                        wall = max(s.stamps[-1] for s in streams) - min(s.sent for s in streams)
                        results.append(Level("plain loop", n, wall, streams, [args.tokens] * n))
                if "closed" in modes:
                    work = closed_work(n, args.closed_requests, 1_000_000 + 7919 * round_ + n)
                    for server in servers:
                        results.append(trio.run(run_clients, server, work, "closed"))
            for sample in range(args.pp_samples):
                # Alternating targets on the same prompt: each pair is measured seconds apart.
                prompt = long_prompt(round_ * args.pp_samples + sample)
                for server in servers:
                    level = trio.run(run_level, server, [prompt], 1)
                    ttft_long.setdefault(server.name, []).append(level.streams[0].ttft)
                    prompt_counts.setdefault(server.name, set()).add(level.streams[0].prompt_tokens)
        for mode in modes:
            report([r for r in results if r.mode == mode], levels, args, mode)
        report_prompts(ttft_long, prompt_counts, servers)
        if args.plot:
            plot(results, levels, modes, args.plot)
    finally:
        for server in servers:
            server.close()  # type: ignore[attr-defined]
        shutil.rmtree(logs, ignore_errors=True)


def summary(runs: list[Level]) -> tuple[float, list[float]]:
    """Median tok/s of the runs, and TTFT p50, p99 and inter-token p50, p99 in ms over all of
    their streams."""
    ttfts = [s.ttft for r in runs for s in r.streams]
    gaps = [g for r in runs for s in r.streams for g in s.gaps()]
    ms = [percentile(v, q) * 1e3 for v in (ttfts, gaps) for q in (0.5, 0.99)]
    return statistics.median(r.tok_s for r in runs), ms


def report(results: list[Level], levels: list[int], args: argparse.Namespace, mode: str) -> None:
    what = (f"{args.tokens} tokens a stream, all clients at once" if mode == "burst" else
            f"closed loop: each client {args.closed_requests} requests back to back, "
            "32 to 128 tokens each")  # fmt: skip
    weights = args.gguf.name if args.gguf else "SmolLM2-135M Q4_1"
    print(f"{mode}: model {MODEL} ({weights}), {what}, greedy; "
          f"{args.parallel} slots of {NUM_CTX}; {available_cpus()} CPUs; "
          f"median of {args.rounds} rounds\n")  # fmt: skip
    names = list(dict.fromkeys(r.target for r in results))
    reference = "llama-server" if "llama-server" in names else None
    header = (f"{'target':<17}{'clients':>8}{'tok/s':>9}{'ratio':>7}{'TTFT p50':>10}"
              f"{'p99':>8}{'ITL p50':>9}{'p99':>8}  (ms)")  # fmt: skip
    print(header)
    ref_tok: dict[int, float] = {}
    for n in levels:
        runs = [r for r in results if r.target == reference and r.clients == n]
        if runs and all(r.complete for r in runs):
            ref_tok[n] = summary(runs)[0]
        for name in names:
            runs = [r for r in results if r.target == name and r.clients == n]
            if not runs:
                continue
            short = [r for r in runs if not r.complete]
            if short:
                got = sorted({s.tokens for r in short for s in r.streams})
                print(f"{name:<17}{n:>8}  stopped early: token counts {got}, left out")
                continue
            tok, ms = summary(runs)
            ratio = f"{tok / ref_tok[n]:7.2f}" if n in ref_tok else f"{'-':>7}"
            print(f"{name:<17}{n:>8}{tok:>9.1f}{ratio}"
                  f"{ms[0]:>10.1f}{ms[1]:>8.1f}{ms[2]:>9.1f}{ms[3]:>8.1f}")  # fmt: skip
    # Equal work: every request read as the same number of prompt tokens on every server (a
    # level's streams are listed client by client, request by request, on every target).
    counts = {name: [[s.prompt_tokens for s in r.streams] for r in results if r.target == name]
              for name in names if name != "plain loop"}  # fmt: skip
    same = len({repr(c) for c in counts.values()}) <= 1
    print(f"\nevery server read the same prompt token count for every request: "
          f"{'yes' if same else 'NO'}; load average {load_average()}\n")  # fmt: skip


def report_prompts(
    ttft_long: dict[str, list[float]], prompt_counts: dict[str, set[int]], servers: list[Target]
) -> None:
    med = statistics.median
    reference = "llama-server" if "llama-server" in ttft_long else None
    print(f"prompt processing: one client, a prompt of about 1,000 tokens, 1 token out "
          f"({len(next(iter(ttft_long.values()), []))} samples a target, paired)")  # fmt: skip
    ref = ttft_long.get(reference) if reference else None
    for name, values in ttft_long.items():
        # The median of the pairs' ratios: each pair ran back to back, so the machine's slow
        # minutes fall on both of its halves.
        pairs = [r / v for r, v in zip(ref, values, strict=True)] if ref else []
        ratio = f"  ({med(pairs):.2f}x llama-server's speed)" if pairs else ""
        print(f"  {name:<17} TTFT {med(values) * 1e3:7.1f} ms, prompt tokens "
              f"{sorted(prompt_counts[name])}{ratio}")  # fmt: skip
    print("\nmemory (the process holding the model):")
    for server in servers:
        rss, kv = server.memory()
        print(f"  {server.name:<17} resident {rss / 2**20:7.1f} MiB, KV {kv / 2**20:7.1f} MiB")


def plot(results: list[Level], levels: list[int], modes: list[str], path: Path) -> None:
    """Inter-token p99 against TTFT p50, a point per target and client count, a panel per mode:
    the trade-off a prompt budget per step makes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot: matplotlib is not installed (pip install -e '.[plot]'); {path} not drawn")
        return
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 5), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        names = list(dict.fromkeys(r.target for r in results if r.mode == mode))
        for name in names:
            xs, ys, ns = [], [], []
            for n in levels:
                runs = [r for r in results if r.mode == mode and r.target == name
                        and r.clients == n and r.complete]  # fmt: skip
                if n > 1 and runs:
                    ms = summary(runs)[1]
                    xs.append(ms[0])
                    ys.append(ms[3])
                    ns.append(n)
            marker = "s" if name == "llama-server" else "o"
            ax.plot(xs, ys, marker=marker, label=name)
            for x, y, n in zip(xs, ys, ns, strict=True):
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("TTFT p50 (ms)")
        ax.set_ylabel("inter-token gap p99 (ms)")
        ax.set_title(f"{mode}: points labelled by clients")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
