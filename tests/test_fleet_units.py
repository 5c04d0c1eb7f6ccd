"""The fleet's pure parts, without a cluster: the affinity rule, the merged views, the routing
key of a name, and the Serve config file in docs/ (it builds the application)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from trio_ollama.routing import ServerLoad, affinity_order

ROOT = Path(__file__).resolve().parent.parent


def test_affinity_order() -> None:
    idle_with_a = ServerLoad({"a": 0}, 0)
    busy_with_a = ServerLoad({"a": 3, "b": 0}, 1)
    empty = ServerLoad({}, 0)
    two_models = ServerLoad({"b": 0, "c": 0}, 0)
    servers = [busy_with_a, two_models, idle_with_a, empty]
    # Those with the model first, least busy first; then the fewest models.
    assert affinity_order(servers, "a") == [2, 0, 3, 1]
    # A model no one has: the fewest models first, then the fewest waiting (1 before 0).
    assert affinity_order(servers, "z") == [3, 2, 1, 0]
    assert affinity_order([], "a") == []


def test_cores_of_replicas_sharing_a_machine() -> None:
    from trio_ollama.fleet.server import cores_of

    usable = sorted(os.sched_getaffinity(0))
    assert cores_of(0, 0) == cores_of(3, 0) == []
    assert cores_of(0, 1) == [usable[0]]
    assert cores_of(1, 1) == [usable[1 % len(usable)]]
    assert cores_of(len(usable), 1) == [usable[0]]  # round the list
    assert cores_of(0, len(usable) + 1) == usable


def test_merged_views() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from trio_ollama.fleet import views
    from trio_ollama.fleet.wire import model_in, model_key

    ps = views.merge_ps([("r1", {"models": [{"name": "a"}]}), ("r2", {"models": [{"name": "b"}]})])
    assert ps == {"models": [{"name": "a", "replica": "r1"}, {"name": "b", "replica": "r2"}]}
    tags = views.merge_listing(
        [{"models": [{"name": "a"}, {"name": "b"}]}, {"models": [{"name": "b"}, {"name": "c"}]}],
        "models", "name",
    )  # fmt: skip
    assert [m["name"] for m in tags["models"]] == ["a", "b", "c"]
    text = '# HELP x_total Things.\n# TYPE x_total counter\nx_total{model="a"} 2.0\n'
    merged = views.merge_metrics([("r1", text), ("r2", text.replace("2.0", "5.0"))]).decode()
    assert merged.count("# TYPE x_total counter") == 1
    (family,) = [f for f in text_string_to_metric_families(merged) if f.name == "x"]
    assert {(s.labels["replica"], s.value) for s in family.samples} == {("r1", 2.0), ("r2", 5.0)}
    assert model_key("library/smollm2:135m") == "smollm2:135m"
    assert model_key("m1") == "m1:latest"
    assert model_in(b'{"model": "m1"}') == "m1"
    assert model_in(b"{bad") == model_in(b"[1]") == model_in(b'{"model": 5}') == ""


def test_the_serve_config_file_builds_the_fleet() -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from trio_ollama.fleet.app import build

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((ROOT / "docs/fleet-serve.yaml").read_text())
    )
    (app,) = config.applications
    assert app.import_path == "trio_ollama.fleet.app:build"
    assert build(app.args) is not None
    with pytest.raises(ValueError, match="replica: unknown key"):
        build({"replica": 2})


def test_what_a_hostile_body_can_make_the_ingress_hold() -> None:
    """Nesting past Go's bound, or a name no server takes (a megabyte of it), is no routing
    key: any replica answers it as one server does. A body past the server's bound is
    refused before it is all held, declared or not."""
    from trio_ollama.fleet.wire import model_in, read_body

    assert model_in(b'{"model": ' + b"[" * 100_000 + b"}") == ""
    assert model_in(b'{"model": "' + b"x" * 1_000_000 + b'"}') == ""
    assert model_in(b'{"model": "bad name!"}') == ""
    assert model_in(b'{"model": "m1", "x": 1e999}') == ""  # Go refuses the number too

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"x" * 1000

    async def main() -> None:
        assert await read_body(chunks(3), None, 3000) == b"x" * 3000
        assert await read_body(chunks(4), None, 3000) is None
        assert await read_body(chunks(1), 3001, 3000) is None

    trio.run(main)


def test_the_routers_notes_of_spent_models_are_dropped() -> None:
    """A model the router sent a replica is remembered only until a report read after its
    last request finished: a client naming a new model each time grows nothing."""
    from trio_ollama.fleet.router import FleetRouter, _Sent

    router = object.__new__(FleetRouter)
    router.sent = {"r1": _Sent(last={"a": 10.0, "b": 50.0}, open=Counter({"b": 1}))}
    replica = SimpleNamespace(replica_id="r1", routing_stats={"running": {}, "at": 20.0})
    assert router.load_of(replica).running == {"b": 1}  # type: ignore[arg-type]
    assert router.sent["r1"].last == {"b": 50.0}
