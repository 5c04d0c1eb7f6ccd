"""The load generator: specs checked at the boundary, requests drawn from the seed, arrivals
shaped as asked, traces that round-trip; and runs against the echo endpoint and against
`serve` (in-process fake runners), whose own counts must agree with the generator's.
The real model is in `test_api.py`."""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.inprocess import open_served
from tests.test_metrics import Scrape, make_settings
from trio_ollama.bench import (
    SpecError,
    StepResult,
    read_trace,
    result_json,
    run_spec,
    spec_from,
    steps,
    table,
    write_trace,
)
from trio_ollama.bench.echo import make_app, serve_echo
from trio_ollama.bench.report import read_result, write_result

# ----- specs


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"colour": "blue"}, "colour: unknown key"),
        ({"api": "grpc"}, "api: 'grpc' is not one of generate, chat, openai-chat"),
        ({"target": "ftp://x"}, "target: 'ftp://x' is not an http:// or https:// URL"),
        ({"load": {"concurrency": [4, 0]}}, "load.concurrency: 0 is below 1"),
        ({"load": {"requests": "ten"}}, "load.requests: 'ten' is not an integer"),
        ({"load": {"mode": "trace"}}, "load.trace: mode 'trace' needs a trace file"),
        ({"workload": {"disconnect": {"queue": 0.7, "prefill": 0.5}}},
         "workload.disconnect: the fractions add up to more than 1"),
        ({"workload": {"prompt_tokens": {"dist": "uniform", "low": 9, "high": 3}}},
         "workload.prompt_tokens.high: 3 is below low (9)"),
        ({"workload": {"models": []}}, "workload.models: a list of model names"),
    ],
)  # fmt: skip
def test_a_bad_spec_is_refused_naming_its_key(data: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from(data)
    assert str(info.value).startswith(error)


# ----- requests drawn from the seed

MIX = {
    "seed": 7,
    "load": {"mode": "open", "rate": [5.0], "requests": 200},
    "workload": {
        "models": ["a", "b", "c"], "model_dist": "zipf", "zipf_s": 1.5,
        "prompt_tokens": {"dist": "lognormal", "value": 40, "sigma": 0.6},
        "output_tokens": {"dist": "uniform", "low": 8, "high": 64},
        "shared_prefix": 0.5, "prefix_tokens": 20,
        "disconnect": {"queue": 0.1, "prefill": 0.1, "after_tokens": 0.2},
    },
}  # fmt: skip


def test_a_seed_gives_the_same_requests_and_another_seed_others() -> None:
    [one] = steps(spec_from(MIX))
    [again] = steps(spec_from(MIX))
    [other] = steps(spec_from({**MIX, "seed": 8}))
    assert one == again
    assert [r.prompt for r in one.requests] != [r.prompt for r in other.requests]
    counts = {m: sum(r.model == m for r in one.requests) for m in "abc"}
    assert counts["a"] > counts["b"] > counts["c"] > 0, counts  # Zipf: rank 1 most often
    kinds = {k: sum(r.disconnect == k for r in one.requests) for k in ("queue", "prefill")}
    assert 5 <= kinds["queue"] <= 35 and 5 <= kinds["prefill"] <= 35, kinds
    shared = sum("\n" in r.prompt for r in one.requests)  # the prefix, then a line break
    assert 70 <= shared <= 130, shared  # half of 200
    assert len({r.prompt.split("\n")[0] for r in one.requests if "\n" in r.prompt}) == 1
    assert len({r.prompt for r in one.requests}) == 200, "every prompt is its own"
    assert all(8 <= r.max_tokens <= 64 for r in one.requests)


def test_poisson_arrivals_pass_a_goodness_of_fit_test() -> None:
    """Kolmogorov-Smirnov against the exponential law of the gaps, at the 1% level."""
    rate, n = 4.0, 2000
    [step] = steps(spec_from({"seed": 3, "load": {"mode": "open", "rate": [rate], "requests": n}}))
    times = [r.at for r in step.requests]
    gaps = sorted(b - a for a, b in zip([0.0, *times], times, strict=False))
    d = max(
        max((i + 1) / n - (1 - math.exp(-rate * g)), (1 - math.exp(-rate * g)) - i / n)
        for i, g in enumerate(gaps)
    )
    assert d < 1.63 / math.sqrt(n), d
    assert abs(times[-1] / n - 1 / rate) < 0.05 / rate * 3  # the mean gap is 1/rate


def test_bursts_send_nothing_while_off() -> None:
    spec = {"seed": 1, "load": {"mode": "bursts", "rate": [20.0], "requests": 300, "on": 2.0,
                                "off": 3.0}}  # fmt: skip
    [step] = steps(spec_from(spec))
    assert all(r.at % 5.0 < 2.0 for r in step.requests)
    assert step.requests[-1].at > 10, "300 at 20/s is 15 s of on-time, spread over off-time"


def test_a_trace_round_trips(tmp_path: Path) -> None:
    [step] = steps(spec_from(MIX))
    path = tmp_path / "trace.jsonl"
    write_trace(step.requests, path)
    assert tuple(read_trace(path)) == step.requests
    [replayed] = steps(spec_from({"load": {"mode": "trace", "trace": str(path)}}))
    assert replayed.requests == step.requests


def test_a_trace_line_that_is_not_a_request_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"model": "a", "at": 0}\n{"at": 1}\n')
    with pytest.raises(SpecError, match=r"bad.jsonl:2: a JSON object with a model"):
        read_trace(path)


# ----- runs against the echo endpoint


async def run(spec: dict[str, Any], raw: bool = False) -> list[StepResult]:
    results: list[StepResult] = []
    await run_spec(spec_from(spec), results, progress=lambda *_: None, raw=raw)
    return results


@pytest.mark.parametrize("api", ["generate", "chat", "openai-chat", "openai-completions"])
async def test_every_api_is_measured_against_the_echo_endpoint(api: str) -> None:
    app = make_app()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_echo, app)
        [step] = await run({
            "target": url, "api": api, "load": {"concurrency": [3], "requests": 9},
            "workload": {"output_tokens": {"dist": "uniform", "low": 2, "high": 9}},
        })  # fmt: skip
        nursery.cancel_scope.cancel()
    planned = next(iter(steps(spec_from({"load": {"requests": 9}, "workload": {
        "output_tokens": {"dist": "uniform", "low": 2, "high": 9}}}))))  # fmt: skip
    assert len(step.outcomes) == 9 and all(o.ok for o in step.outcomes)
    by_index = {o.index: o for o in step.outcomes}
    for plan in planned.requests:
        o = by_index[plan.index]
        assert o.output_tokens == o.chunks == plan.max_tokens
        assert o.ttft is not None and len(o.gaps) == plan.max_tokens - 1
    assert app.requests == 9 and app.tokens == sum(p.max_tokens for p in planned.requests)  # type: ignore[attr-defined]


async def test_a_client_hangs_up_after_k_tokens_as_the_spec_says() -> None:
    app = make_app(token_delay=0.01)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_echo, app)
        [step] = await run({
            "target": url, "load": {"concurrency": [4], "requests": 8},
            "workload": {"output_tokens": 40,
                         "disconnect": {"after_tokens": 0.5, "after_k": 5}},
        })  # fmt: skip
        nursery.cancel_scope.cancel()
    cut = [o for o in step.outcomes if o.disconnect == "after_tokens"]
    assert cut and all(o.disconnected and o.chunks == 5 for o in cut)
    whole = [o for o in step.outcomes if not o.disconnect]
    assert whole and all(o.ok and o.chunks == 40 for o in whole)
    summary = result_json(spec_from({}), [step])["steps"][0]["summary"]
    assert summary["disconnects"]["after_tokens"] == len(cut)
    assert summary["ok"] == len(whole)


async def test_an_interrupted_run_keeps_what_it_measured(tmp_path: Path) -> None:
    app = make_app(token_delay=0.005)
    results: list[StepResult] = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_echo, app)
        spec = spec_from({"target": url, "load": {"concurrency": [2], "requests": 1000},
                          "workload": {"output_tokens": 10}})  # fmt: skip
        with trio.move_on_after(1):  # Ctrl-C, as the CLI turns it into a cancellation
            await run_spec(spec, results, progress=lambda *_: None)
        nursery.cancel_scope.cancel()
    [step] = results
    assert 0 < len(step.outcomes) < 1000 and step.interrupted
    # The two in flight at the cut say so, whether their answer had begun or not.
    cut = [o for o in step.outcomes if o.error == "cut: the run ended first"]
    assert len(cut) == 2 and not any(o.ok for o in cut)
    path = tmp_path / "result.json"
    write_result(path, result_json(spec, results))
    data = read_result(path)
    assert data["steps"][0]["summary"]["interrupted"] is True
    assert "(cut)" in table([("run", data)])


# ----- against serve: the server's own counts agree


async def test_counts_agree_with_the_servers_metrics_and_disconnects_are_seen(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, OLLAMA_NUM_PARALLEL="1")
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=20)
        # One slot and three clients: a request waits 0.3 s or more behind the others, so a
        # hang-up after 0.2 s comes while it is queued. One that found the slot free has its
        # answer by then, and keeps it (too late to leave the queue).
        [step] = await run({
            "target": served.url, "load": {"concurrency": [3], "requests": 12},
            "workload": {"models": ["tiny"], "output_tokens": 6,
                         "disconnect": {"queue": 0.25, "queue_s": 0.2}},
        })  # fmt: skip
        async with httpx.AsyncClient(base_url=served.url) as client:
            m = Scrape((await client.get("/metrics")).text)
        served.stop.set()
    hung_up = [o for o in step.outcomes if o.disconnected]
    whole = [o for o in step.outcomes if o.ok]
    assert hung_up and all(o.disconnect == "queue" and o.status == 0 for o in hung_up)
    assert len(whole) == 12 - len(hung_up) and all(o.output_tokens == 6 for o in whole)
    # The server saw the same: the answered requests and their tokens, and each hang-up as a
    # request that ended before any status.
    key = {"model": "tiny:latest", "endpoint": "/api/generate"}
    assert m.value("trio_ollama_requests_total", **key, status="200") == len(whole)
    assert m.value("trio_ollama_generated_tokens_total") == 6 * len(whole)
    assert m.value("trio_ollama_requests_total", **key, status="0") == len(hung_up)
    assert step.metrics_before is not None and step.metrics_after is not None


@contextmanager
def echo_in_a_thread(token_delay: float, answers: int) -> Iterator[tuple[str, threading.Event]]:
    """The echo endpoint on its own Trio loop in a thread of this process: its URL, and an
    event set once it has answered `answers` requests."""
    app = make_app(token_delay)
    answered = threading.Event()

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        if app.requests >= answers:  # type: ignore[attr-defined]
            answered.set()

    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(serve_echo, counting)
                started.put((url, trio.lowlevel.current_trio_token(), scope))

    thread = threading.Thread(target=trio.run, args=(main,))
    thread.start()
    url, token, scope = started.get(timeout=30)
    try:
        yield url, answered
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join()


@pytest.mark.slow
def test_ctrl_c_stops_the_cli_cleanly_and_writes_what_was_measured(tmp_path: Path) -> None:
    """`trio-ollama bench run` against the echo endpoint, SIGINTed once it has had answers."""
    import signal
    import subprocess
    import sys

    from trio_ollama.bench.report import read_result

    # Two clients, each asking again once answered: by the third answer the run has one whole.
    with echo_in_a_thread(token_delay=0.01, answers=3) as (url, answered):
        out = tmp_path / "cut.json"
        run = subprocess.Popen(
            [sys.executable, "-m", "trio_ollama", "bench", "run", "--target", url,
             "--concurrency", "2", "--requests", "10000", "--output-tokens", "10",
             "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert answered.wait(60), "the run sent nothing"
            run.send_signal(signal.SIGINT)
            stdout, stderr = run.communicate(timeout=30)
        finally:
            run.kill()
    assert run.returncode == 0, stderr
    assert "interrupted: writing what was measured" in stderr and "Traceback" not in stderr
    [step] = read_result(out)["steps"]
    assert step["summary"]["interrupted"] and 0 < step["summary"]["requests"] < 10000
    assert "(cut)" in stdout


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent.parent / "benchmarks" / "specs").glob("*.toml"))
)
def test_the_example_specs_load(path: Path) -> None:
    from trio_ollama.bench import load_spec

    spec = load_spec(path)
    assert list(steps(spec)), "every example runs at least one step"


async def test_refusals_and_slow_answers_are_errors_by_kind(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        served = await open_served(nursery, settings, grace=1, tokens_per_second=20)
        [missing] = await run({"target": served.url, "load": {"requests": 3},
                               "workload": {"models": ["nope"]}})  # fmt: skip
        [slow] = await run({"target": served.url, "timeout": 0.3, "load": {"requests": 2},
                            "workload": {"models": ["tiny"], "output_tokens": 50}})  # fmt: skip
        served.stop.set()
    assert [(o.status, o.error) for o in missing.outcomes] == [(404, "model 'nope' not found")] * 3
    assert result_json(spec_from({}), [missing])["steps"][0]["summary"]["errors"] == {"http 404": 3}
    assert [o.error for o in slow.outcomes] == ["timed out after 0.3 s"] * 2
    assert all(o.chunks >= 1 for o in slow.outcomes), "measured until then"
    assert all(o.e2e is not None and 0.3 <= o.e2e < 1 for o in slow.outcomes)


def test_a_missing_spec_or_trace_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    from trio_ollama.bench import load_spec

    with pytest.raises(SpecError, match="No such file"):
        load_spec(tmp_path / "none.toml")
    with pytest.raises(SpecError, match="No such file"):
        read_trace(tmp_path / "none.jsonl")


async def test_an_open_loop_reports_how_late_it_sent() -> None:
    app = make_app()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_echo, app)
        spec = {"target": url, "seed": 2, "load": {"mode": "open", "rate": [20.0], "requests": 20},
                "workload": {"output_tokens": 4}}  # fmt: skip
        [step] = await run(spec)
        nursery.cancel_scope.cancel()
    lag = result_json(spec_from(spec), [step])["steps"][0]["summary"]["send_lag_s"]
    assert all(o.planned is not None for o in step.outcomes)
    assert lag["p50"] >= 0 and lag["max"] < 0.2, lag  # sent on time: the generator kept up


def main(argv: list[str]) -> int:
    """The `bench` verb as the CLI parses it, without the CLI's logging set-up (global)."""
    from trio_ollama.bench import cli as bench_cli
    from trio_ollama.cli.main import build_parser

    return bench_cli.main(build_parser().parse_args(argv))


async def test_compare_puts_result_files_side_by_side(tmp_path: Path) -> None:
    app = make_app()
    paths = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_echo, app)
        for name, tokens in (("short", 4), ("long", 12)):
            spec = {"target": url, "load": {"concurrency": [1, 2], "requests": 4},
                    "workload": {"output_tokens": tokens}}  # fmt: skip
            results = await run(spec)
            paths.append(tmp_path / f"{name}.json")
            write_result(paths[-1], result_json(spec_from(spec), results))
        nursery.cancel_scope.cancel()
    code = await trio.to_thread.run_sync(
        lambda: main(["bench", "compare", *map(str, paths), str(tmp_path / "missing.json")])
    )
    assert code == 1, "a missing file is an error, not a traceback"
    lines: list[str] = []

    def compare() -> int:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = main(["bench", "compare", *map(str, paths)])
        lines.extend(out.getvalue().splitlines())
        return result

    assert await trio.to_thread.run_sync(compare) == 0
    rows = [line.split() for line in lines[1:] if line.startswith(("short", "long"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("short", "concurrency=1", "4/4"), ("short", "concurrency=2", "4/4"),
        ("long", "concurrency=1", "4/4"), ("long", "concurrency=2", "4/4"),
    ]  # fmt: skip
