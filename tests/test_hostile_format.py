"""Structured-output schemas that would cost without bound (issue 29, items 1 and 2): each is
refused with a 400 in the API's words before a runner is leased for it, and again by the runner
itself (library users reach it without the API); nothing dies, nothing waits on them, and a
reasonable schema still works. Why each case cost what it did: `trio_ollama.runner.grammar`."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.procs import poll_until
from tests.server import RealServers, ServerProcess
from tests.test_runner import counting, generate, load
from trio_ollama.runner.client import RunnerError
from trio_ollama.runner.grammar import (
    ALTERNATIVES_LIMIT,
    GRAMMAR_LIMIT,
    REPEAT_LIMIT,
    FormatError,
    _Walk,
    format_grammar,
    format_problem,
)
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Sampling

MODEL = "smollm2:135m"
INVALID = "invalid JSON schema in format"


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"child": schema}, "required": ["child"]}
    return schema


# Seven levels of ten `$ref`s to the next (1.5 KB): llama.cpp took 3.6 s to set it up.
FAN_OUT: dict[str, Any] = {
    "$defs": {
        **{f"d{k}": {"anyOf": [{"$ref": f"#/$defs/d{k + 1}"}] * 10} for k in range(7)},
        "d7": {"enum": ["x", "y"]},
    },
    "type": "array",
    "items": {"$ref": "#/$defs/d0"},
}

CASES: list[tuple[str, dict[str, Any], str]] = [
    # The issue's: a SIGSEGV of the runner (the first two), a 400 from llama.cpp, 6 GB, 40 s,
    # no answer in 90 s, another request held 10 s.
    ("maxLength 100000", {"type": "string", "maxLength": 100_000},
     f"{INVALID}: maxLength 100000 is more than 1000"),
    ("maxLength 1000000", {"type": "string", "maxLength": 1_000_000},
     f"{INVALID}: maxLength 1000000 is more than 1000"),
    ("maxLength 10000", {"type": "string", "maxLength": 10_000},
     f"{INVALID}: maxLength 10000 is more than 1000"),
    ("minLength 10^9", {"type": "string", "minLength": 10**9},
     f"{INVALID}: minLength 1000000000 is more than 1000"),
    ("minLength 10^8", {"type": "string", "minLength": 10**8},
     f"{INVALID}: minLength 100000000 is more than 1000"),
    ("minLength 3*10^7", {"type": "string", "minLength": 3 * 10**7},
     f"{INVALID}: minLength 30000000 is more than 1000"),
    ("enum of 100000", {"enum": [f"v{i}" for i in range(100_000)]},
     f"{INVALID}: enum has 100000 values, more than 256"),
    # The same costs by other roads.
    ("maxItems 100000", {"type": "array", "items": {"type": "integer"}, "maxItems": 100_000},
     f"{INVALID}: maxItems 100000 is more than 1000"),
    ("pattern .{0,100000}", {"type": "string", "pattern": "^.{0,100000}$"},
     f"{INVALID}: pattern repeats 100000 times, more than 1000"),
    ("$ref fan-out 10^7", FAN_OUT, f"{INVALID}: 2000 alternatives at one place, more than 256"),
    ("long name repeated", {"type": "object", "properties": {"x" * 5000: {
        "type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}},
        "minItems": 1000}}}, f"{INVALID}: its grammar would be more than 262144 bytes"),
    ("100 levels deep", nested(100), f"{INVALID}: nested more than 64 deep"),
]  # fmt: skip

# What must still work: the kind of schema clients send, and every limit at its edge (each is
# accepted by llama.cpp's parser: maxLength 1001 is not).
REASONABLE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 50},
        "age": {"type": "integer"},
        "colour": {"enum": ["red", "green", "blue", "yellow", "purple"]},
    },
    "required": ["name", "age", "colour"],
}
AT_THE_LIMITS: list[tuple[str, dict[str, Any]]] = [
    ("maxLength 1000", {"type": "string", "maxLength": REPEAT_LIMIT}),
    ("minLength 1000", {"type": "string", "minLength": REPEAT_LIMIT}),
    ("maxItems 1000", {"type": "array", "items": {"type": "integer"}, "maxItems": REPEAT_LIMIT}),
    ("pattern {0,1000}", {"type": "string", "pattern": "^(ab|cd){0,1000}$"}),
    ("enum of 256", {"enum": [f"value {i}" for i in range(ALTERNATIVES_LIMIT)]}),
    ("256 optional properties",
     {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(256)}}),
    ("64 levels deep", nested(64)),
    ("$ref fan-out 200", {**FAN_OUT, "$defs": {**FAN_OUT["$defs"], "d0": {"$ref": "#/$defs/d5"}}}),
]  # fmt: skip


# ----- the bounds themselves (no model)


@pytest.mark.parametrize(("schema", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_costly_schema_is_refused_before_any_grammar(
    schema: dict[str, Any], message: str
) -> None:
    text = json.dumps(schema, separators=(",", ":"))
    assert format_problem(text) == message
    with pytest.raises(FormatError) as info:
        format_grammar(text)  # the runner's road
    assert str(info.value) == message


def test_json_and_no_format_cost_nothing() -> None:
    assert format_problem("") is None
    assert format_problem("json") is None
    assert format_problem("x" * 2_000_000) == (
        f"{INVALID}: the schema is 2000000 characters long, more than 1000000"
    )


@pytest.mark.parametrize(
    "schema",
    [REASONABLE, *(c[1] for c in AT_THE_LIMITS)],
    ids=["reasonable", *(c[0] for c in AT_THE_LIMITS)],
)
def test_the_walk_bounds_the_real_grammar_from_above(schema: dict[str, Any]) -> None:
    text = json.dumps(schema)
    assert format_problem(text) is None
    walk = _Walk(schema)
    walk.node(schema, 0, 0)
    grammar = format_grammar(text)
    assert len(grammar) <= walk.size <= GRAMMAR_LIMIT


def test_the_walk_bounds_long_names_and_allof_too() -> None:
    word = {"type": "string", "pattern": "^[a-z]{3,9}$"}
    item = {"type": "object", "properties": {"a" * 40: word}}
    items = {"type": "array", "items": item, "minItems": 50}
    schemas: list[dict[str, Any]] = [
        {"type": "object", "properties": {"k" * 200: items}},
        {"$defs": {"part": {"properties": {"p" * 100: item}}},
         "allOf": [{"$ref": "#/$defs/part"}, {"anyOf": [{"$ref": "#/$defs/part"}]}]},
        {"type": "object", "additionalProperties": item, "properties": {"q": {"const": "x" * 999}}},
    ]  # fmt: skip
    for schema in schemas:
        walk = _Walk(schema)
        walk.node(schema, 0, 0)
        assert len(format_grammar(json.dumps(schema))) <= walk.size


# ----- through the real server and its runner

server_only = pytest.mark.slow


@pytest.fixture(scope="module")
def server(real_servers: RealServers) -> ServerProcess:
    """The real server `test_hostile.py` shares: two slots, a 512-token window."""
    proc = real_servers.get({"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_CONTEXT_LENGTH": "512"})
    httpx.post(proc.url + "/api/generate", json={"model": MODEL}, timeout=120)
    return proc


def post(server: ServerProcess, path: str, body: Any) -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body).encode(), timeout=300)


def generate_body(schema: Any, num_predict: int = 2, prompt: str = "hi") -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, "format": schema, "stream": False,
            "options": {"num_predict": num_predict, "temperature": 0}}  # fmt: skip


@server_only
@pytest.mark.parametrize(("schema", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_costly_schema_is_a_400_and_kills_nothing(
    server: ServerProcess, schema: dict[str, Any], message: str
) -> None:
    runners = server.runners()
    assert runners, "the model is loaded"
    r = post(server, "/api/generate", generate_body(schema))
    assert r.status_code == 400, r.text
    assert r.json() == {"error": message}
    assert server.proc.poll() is None, "the server died"
    assert server.runners() == runners, "the runner died or was replaced"


@server_only
def test_chat_and_the_openai_layer_refuse_it_too(server: ServerProcess) -> None:
    runners = server.runners()
    schema = {"type": "string", "maxLength": 100_000}
    message = f"{INVALID}: maxLength 100000 is more than 1000"
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "format": schema}
    r = post(server, "/api/chat", chat)  # streamed: refused before the first line
    assert (r.status_code, r.json()) == (400, {"error": message})
    response_format = {"type": "json_schema", "json_schema": {"schema": schema}}
    openai = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
              "response_format": response_format}  # fmt: skip
    r = post(server, "/v1/chat/completions", openai)
    assert r.status_code == 400 and r.json()["error"]["message"] == message
    assert server.runners() == runners


@server_only
def test_a_reasonable_schema_still_works(server: ServerProcess) -> None:
    prompt = "Describe a person as JSON with a name, an age and a favourite colour."
    r = post(server, "/api/generate", generate_body(REASONABLE, num_predict=200, prompt=prompt))
    assert r.status_code == 200, r.text
    assert r.json()["done_reason"] == "stop"
    value = json.loads(r.json()["response"])
    assert set(value) == {"name", "age", "colour"}
    assert isinstance(value["name"], str) and len(value["name"]) <= 50
    assert isinstance(value["age"], int)
    assert value["colour"] in REASONABLE["properties"]["colour"]["enum"]  # type: ignore[index]


@server_only
@pytest.mark.parametrize("schema", [c[1] for c in AT_THE_LIMITS], ids=[c[0] for c in AT_THE_LIMITS])
def test_a_schema_at_the_limits_is_served(server: ServerProcess, schema: dict[str, Any]) -> None:
    r = post(server, "/api/generate", generate_body(schema))
    assert r.status_code == 200, r.text
    assert r.json()["eval_count"] > 0


@server_only
def test_a_refused_schema_holds_up_no_request_beside_it(server: ServerProcess) -> None:
    # Beside: on the same runner (one model, two slots), sent at the same moment.
    body = {"model": MODEL, "prompt": counting(), "raw": True, "stream": False,
            "options": {"num_predict": 8, "temperature": 0}}  # fmt: skip
    started = time.monotonic()
    alone = post(server, "/api/generate", body).json()["response"]
    alone_seconds = time.monotonic() - started
    costly = [
        c for c in CASES if c[0] in ("minLength 3*10^7", "enum of 100000", "maxLength 100000")
    ]
    runners = server.runners()

    def timed(request: dict[str, Any]) -> tuple[httpx.Response, float]:
        began = time.monotonic()
        return post(server, "/api/generate", request), time.monotonic() - began

    with concurrent.futures.ThreadPoolExecutor(len(costly) + 1) as pool:
        refused = [pool.submit(timed, generate_body(schema)) for _, schema, _ in costly]
        beside = pool.submit(timed, body)
        answer, seconds = beside.result()
        for future, (_, _, message) in zip(refused, costly, strict=True):
            r, _ = future.result()
            assert (r.status_code, r.json()) == (400, {"error": message})
    assert answer.status_code == 200 and answer.json()["response"] == alone
    # The issue's: a 3*10^7 schema held another request on the same runner for 10 s.
    assert seconds < alone_seconds + 10
    assert server.runners() == runners


@server_only
def test_a_refused_schema_leases_no_runner(server: ServerProcess) -> None:
    """Last: it unloads the model. Refused before a runner is leased, so none is loaded."""
    r = post(server, "/api/generate", {"model": MODEL, "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"
    poll_until(lambda: not server.runners(), 30, "the model did not unload")
    _, schema, message = CASES[0]
    r = post(server, "/api/generate", generate_body(schema))
    assert (r.status_code, r.json()) == (400, {"error": message})
    assert httpx.get(server.url + "/api/ps").json()["models"] == []
    assert server.runners() == []


# ----- the runner's own check, for library users


@pytest.mark.slow
@pytest.mark.usefixtures("no_orphan_processes")
async def test_the_runner_refuses_them_itself_and_holds_up_nothing(default_gguf: Path) -> None:
    greedy = Sampling(temperature=0, num_predict=8)
    async with open_runner(load(default_gguf, num_ctx=512, num_parallel=2)) as runner:
        began = trio.current_time()
        alone, _ = await generate(runner, counting(), sampling=greedy)
        alone_seconds = trio.current_time() - began
        pid = runner.pid
        refusals: dict[str, str] = {}
        beside: list[tuple[str, float]] = []

        async def refused(name: str, schema: dict[str, Any]) -> None:
            with pytest.raises(RunnerError) as info:
                await generate(runner, "hi", format=json.dumps(schema), sampling=greedy)
            assert info.value.invalid
            refusals[name] = str(info.value)

        async def normal() -> None:
            began = trio.current_time()
            text, _ = await generate(runner, counting(), sampling=greedy)
            beside.append((text, trio.current_time() - began))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(normal)
            for name, schema, _ in CASES:
                nursery.start_soon(refused, name, schema)
        assert refusals == {name: message for name, _, message in CASES}
        [(text, seconds)] = beside
        assert text == alone
        assert seconds < alone_seconds + 10  # the issue's: another request held 10 s
        # Still the same runner, still serving.
        assert runner.pid == pid
        assert (await generate(runner, counting(), sampling=greedy))[0] == alone


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": 5}, "a keyword's value has the wrong type"),
        ({"type": "nope"}, "Unrecognized schema: {'type': 'nope'}"),
        ({"x": ["a"] * 1000}, "Unrecognized schema: {'x': ['a', 'a', "),
    ],
)
def test_a_schema_the_converter_refuses_is_said_without_pythons_words(
    schema: dict[str, object], message: str
) -> None:
    from trio_ollama.runner.grammar import FormatError, format_grammar

    with pytest.raises(FormatError) as info:
        format_grammar(json.dumps(schema))
    text = str(info.value)
    assert text.startswith(f"invalid JSON schema in format: {message}"), text
    assert "object has no attribute" not in text
    assert len(text) < 300, "a whole schema is not echoed back"
