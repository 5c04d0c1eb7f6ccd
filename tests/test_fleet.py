"""The fleet on Ray Serve (docs/scale-out.md), for real: a local Ray cluster of a head and two
worker nodes (each its own processes) on 127.0.0.1, two replicas each owning a real
`trio-ollama serve` on one store of three distinct models (the default model's weights, each
with its own bytes), the official clients through the ingress. One cluster for the module:
Ray's start-up costs seconds."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="the fleet needs the ray extra (in the test extra)")

import ollama
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet import FleetServer, fleet_servers, store_with_models
from tests.procs import alive, poll_until
from tests.server import ServerProcess, free_port
from trio_ollama.fleet.app import FleetOptions
from trio_ollama.fleet.cluster import LocalFleet, local_fleet

pytestmark = pytest.mark.slow

SETTINGS = {"OLLAMA_MAX_LOADED_MODELS": "2", "OLLAMA_NUM_PARALLEL": "2", "OLLAMA_NOPRUNE": "1"}
SHORT = {"num_predict": 4, "temperature": 0}
ENDLESS = {"prompt": "Count from 1 to 1000: 1, 2, 3,", "raw": True,
           "options": {"num_predict": 2000, "temperature": 0}}  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> tuple[Path, list[str]]:
    store, names = store_with_models(tmp_path_factory.mktemp("fleet"), 3)
    return store.layout.root, names


@pytest.fixture(scope="module")
def fleet(models: tuple[Path, list[str]], all_cores: None) -> Iterator[LocalFleet]:
    root, _ = models
    env = {**SETTINGS, "OLLAMA_MODELS": str(root)}
    options = FleetOptions(replicas=2, env=env, health_check_period_s=1.0, cores_per_replica=1)
    with local_fleet(options, port=free_port()) as started:
        # One machine: each server on a core of its own, so their runners do not collide.
        first, second = (_cores(s.pid) for s in fleet_servers(root))
        assert len(first) == len(second) == 1 and first != second
        yield started
    # Serve stopped the replicas, and each its server: nothing of the fleet is left.
    poll_until(lambda: not fleet_servers(root), 10, "a fleet server outlived the fleet")


def _cores(pid: int) -> list[int]:
    return sorted(os.sched_getaffinity(pid))


def servers(models: tuple[Path, list[str]]) -> list[FleetServer]:
    found = fleet_servers(models[0])
    assert len(found) == 2
    return found


def generate(url: str, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "prompt": "Hi", "stream": False, "options": SHORT, **extra}
    return httpx.post(url + "/api/generate", json=body, timeout=120)


def holders(models: tuple[Path, list[str]], model: str) -> list[FleetServer]:
    """The servers whose own /api/ps has `model` loaded."""
    return [s for s in servers(models) if model in s.ps()]


def test_official_clients_through_the_ingress(fleet: LocalFleet) -> None:
    client = ollama.Client(host=fleet.url, timeout=120)
    answer = client.generate(model="smollm2:135m", prompt="Hi", options=SHORT)
    assert answer.done and answer.response
    reply = client.chat(model="smollm2:135m", options=SHORT,
                        messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
    assert reply.message.role == "assistant" and reply.message.content
    parts = list(client.chat(model="smollm2:135m", options=SHORT, stream=True,
                             messages=[{"role": "user", "content": "Hi"}]))  # fmt: skip
    assert len(parts) >= 2 and parts[-1].done and "".join(p.message.content for p in parts)
    embedded = client.embed(model="smollm2:135m", input=["one", "two"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 576
    oa = openai.OpenAI(base_url=fleet.url + "/v1", api_key="unused", timeout=120)
    completion = oa.chat.completions.create(
        model="smollm2:135m", max_tokens=4, messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content
    # Greedy: sampled, the model may end its answer before the 4th token (it did once, after
    # "Hi"), and the stream would end with "stop" rather than the "length" it is about.
    chunks = list(oa.chat.completions.create(
        model="smollm2:135m", max_tokens=4, stream=True, temperature=0,
        messages=[{"role": "user", "content": "Hi"}],
    ))  # fmt: skip
    assert len(chunks) >= 2 and chunks[-1].choices[0].finish_reason == "length"


def test_fleet_views(fleet: LocalFleet, models: tuple[Path, list[str]]) -> None:
    assert generate(fleet.url, "smollm2:135m").status_code == 200
    tags = httpx.get(fleet.url + "/api/tags", timeout=30).json()
    assert sorted(m["name"] for m in tags["models"]) == sorted(models[1])
    ps = httpx.get(fleet.url + "/api/ps", timeout=30).json()["models"]
    owners = {m["replica"] for m in ps if m["name"] == "smollm2:135m"}
    assert len(owners) == 1
    listed = httpx.get(fleet.url + "/v1/models", timeout=30).json()
    assert sorted(m["id"] for m in listed["data"]) == sorted(models[1])
    text = httpx.get(fleet.url + "/metrics", timeout=30).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    replicas = {s.labels["replica"] for s in families["trio_ollama_requests"].samples}
    assert len(replicas) == 2, "every replica's metrics, each labelled"
    (owner,) = owners
    generated = {
        s.labels["replica"]
        for s in families["trio_ollama_generated_tokens"].samples
        if s.labels.get("model") == "smollm2:135m" and s.name.endswith("_total") and s.value > 0
    }
    assert generated == {owner}


def test_affinity_seen_in_each_servers_own_ps(
    fleet: LocalFleet, models: tuple[Path, list[str]]
) -> None:
    first, second = models[1][1], models[1][2]
    where: dict[str, FleetServer] = {}
    for model in (first, second):  # warm-up: each lands where it will stay
        counts = {s: len(s.ps()) for s in servers(models)}
        assert generate(fleet.url, model).status_code == 200
        (where[model],) = holders(models, model)
        assert counts[where[model]] == min(counts.values()), "to a replica with the fewest models"
    loads = {s.pid: _loads(s) for s in servers(models)}
    requests = {s.pid: _requests(s) for s in servers(models)}
    for _ in range(3):
        for model in (first, second):
            assert generate(fleet.url, model).status_code == 200
    for server in servers(models):
        assert _loads(server) == loads[server.pid], "no extra load after warm-up"
        for model in (first, second):
            sent = _requests(server).get(model, 0) - requests[server.pid].get(model, 0)
            assert sent == (3 if where[model] == server else 0), (model, server)


def _samples(server: FleetServer, family: str) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for f in text_string_to_metric_families(text):
        if f.name == family:
            for s in f.samples:
                if s.name.endswith("_total"):
                    model = s.labels.get("model", "")
                    counts[model] = counts.get(model, 0) + s.value
    return counts


def _loads(server: FleetServer) -> float:
    return sum(_samples(server, "trio_ollama_loads").values())


def _requests(server: FleetServer) -> dict[str, float]:
    return _samples(server, "trio_ollama_requests")


BAD_BODIES: list[tuple[str, bytes]] = [
    ("/api/generate", b"{not json"),
    ("/api/generate", b'{"prompt": "no model"}'),
    ("/api/chat", b'{"model": "missing:latest", "messages": []}'),
    ("/api/generate", b'{"model": "smollm2:135m", "options": {"num_predict": "many"}}'),
    ("/api/embed", b'{"model": "smollm2:135m", "input": 5}'),
    ("/v1/chat/completions", b'{"model": "smollm2:135m", "messages": "hi"}'),
    ("/v1/messages", b'{"model": "smollm2:135m"}'),
    ("/v1/responses", b'{"model": "smollm2:135m", "input": 5}'),
]


def test_bad_input_answered_as_one_server_answers(
    fleet: LocalFleet, real_server: ServerProcess
) -> None:
    for path, body in BAD_BODIES:
        one = httpx.post(real_server.url + path, content=body, timeout=60)
        through = httpx.post(fleet.url + path, content=body, timeout=60)
        assert 400 <= one.status_code < 500, (path, body, one.text)
        assert (through.status_code, _unique_id_out(through.text)) == (
            one.status_code,
            _unique_id_out(one.text),
        ), (path, body)


def _unique_id_out(text: str) -> str:
    """An error body without its request id (Anthropic's errors have one of their own)."""
    return re.sub(r'"request_id":"req_[0-9a-f]+"', '"request_id":"req_"', text)


def test_a_client_hanging_up_frees_the_slot(
    fleet: LocalFleet, models: tuple[Path, list[str]]
) -> None:
    model = models[1][1]
    assert generate(fleet.url, model).status_code == 200
    (owner,) = holders(models, model)
    body = {"model": model, **ENDLESS}
    with httpx.stream("POST", fleet.url + "/api/generate", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for _ in range(3):
            next(lines)
        assert owner.ps()[model]["requests_running"] == 1
    poll_until(lambda: owner.ps()[model]["requests_running"] == 0, 5,
               "the replica's slot was not freed when the client hung up")  # fmt: skip


def test_a_killed_server_fails_its_stream_and_ray_replaces_it(
    fleet: LocalFleet, models: tuple[Path, list[str]]
) -> None:
    model = models[1][2]
    victim, runners = _loaded_on_one(fleet, models, model)
    body = {"model": model, **ENDLESS}
    lines: list[str] = []
    with (
        pytest.raises(httpx.HTTPError),  # the stream is cut while it is read
        httpx.stream("POST", fleet.url + "/api/generate", json=body, timeout=60) as r,
    ):
        for line in r.iter_lines():
            lines.append(line)
            if len(lines) == 2:
                os.kill(victim.pid, signal.SIGKILL)
    assert '"done":true' not in "".join(lines)
    _replaced(fleet, models, model, victim, runners)


def test_a_killed_replica_takes_its_server_with_it(
    fleet: LocalFleet, models: tuple[Path, list[str]]
) -> None:
    model = models[1][0]
    victim, runners = _loaded_on_one(fleet, models, model)
    os.kill(victim.replica_pid(), signal.SIGKILL)
    poll_until(lambda: not alive(victim.pid), 5, "the server outlived its replica")
    _replaced(fleet, models, model, victim, runners)


def _loaded_on_one(
    fleet: LocalFleet, models: tuple[Path, list[str]], model: str
) -> tuple[FleetServer, list[int]]:
    """`model` loaded through the fleet: the one server that has it, and its runners."""
    assert generate(fleet.url, model).status_code == 200
    (server,) = holders(models, model)
    runners = server.runners()
    assert runners
    return server, runners


def _replaced(
    fleet: LocalFleet, models: tuple[Path, list[str]], model: str, gone: FleetServer,
    runners: list[int],
) -> None:  # fmt: skip
    """The dead server's runners exit, and Ray brings a replica back in its place."""
    poll_until(lambda: not any(alive(p) for p in runners), 5, "a runner outlived its server")
    poll_until(lambda: _fleet_serves(fleet.url, model, models[0], gone), 60,
               "Ray did not bring the replica back")  # fmt: skip


def _fleet_serves(url: str, model: str, root: Path, gone: FleetServer) -> bool:
    """Two servers again (a new one in place of `gone`), each answering on its own port (the
    next test asks each; the ingress may have answered from the other while the new one was
    still starting), and `model` answered through the ingress."""
    now = fleet_servers(root)
    if len(now) != 2 or gone in now:
        return False
    try:
        for server in now:
            server.ps()
        return generate(url, model).status_code == 200
    except httpx.HTTPError:
        return False
