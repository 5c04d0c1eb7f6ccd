"""Pull and push against a real registry (`docker-registry` on loopback), through the real
server, with proxies that cut, stall, count and authenticate; and the `ollama` client and the
CLI on top. Skipped, and said so, where the registry binary is absent (never under CI)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import ollama
import pytest

from tests.ggufs import write_tiny_gguf
from tests.procs import poll_until
from tests.registry import AuthProxy, CuttingProxy, Registry, running_registry
from tests.server import ServerProcess
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.layout import digest_file

PART = 8 << 20  # parts of 8 MiB: the 98 MB model comes in 12 parts, 4 at a time
SAVE_SECONDS = 0.1  # a download's progress saved every 100 ms, not every second
SERVER_ENV = {
    "TRIO_OLLAMA_TRANSFER_PART_SIZE": str(PART),
    "TRIO_OLLAMA_TRANSFER_SAVE_MS": str(round(SAVE_SECONDS * 1000)),
}


# ----- fixtures and helpers


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def netrc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's `NETRC`: the tests write credentials into it when they need them."""
    path = tmp_path_factory.mktemp("netrc") / "netrc"
    path.write_text("")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def server(registry: Registry, models: Path, netrc: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(models, {**SERVER_ENV, "NETRC": str(netrc)})
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture(scope="module")
def tiny(models: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small model created here (a tiny GGUF, a template, parameters): `tiny:latest`."""
    gguf = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    store = Store(models)
    digest = store.import_file(gguf)
    request = CreateRequest(
        files={"tiny.gguf": digest}, template="{{ .Prompt }}", parameters={"temperature": 0}
    )
    store.create("tiny", request)
    return "tiny"


def stream(url: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", url + path, json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def copy(url: str, source: str, destination: str) -> None:
    response = httpx.post(url + "/api/copy", json={"source": source, "destination": destination})
    assert response.status_code == 200, response.text


def delete(url: str, model: str) -> None:
    response = httpx.request("DELETE", url + "/api/delete", json={"model": model})
    assert response.status_code == 200, response.text


def forget(url: str, models: Path, pushed: dict[str, Any]) -> None:
    """Delete the pushed model here, if an earlier test pulled it: its blob must be fetched."""
    if pushed["name"] in tags(url):
        delete(url, pushed["name"])
    assert not Store(models).has_blob(pushed["blob"])


def tags(url: str) -> dict[str, str]:
    """Name → manifest digest of every model the server lists."""
    models = httpx.get(url + "/api/tags").json()["models"]
    return {m["name"]: m["digest"] for m in models}


def statuses(lines: list[dict[str, Any]]) -> list[str]:
    """The status sequence with repeats of one layer's progress folded into one."""
    out: list[str] = []
    for line in lines:
        if "status" in line and (not out or out[-1] != line["status"]):
            out.append(line["status"])
    return out


def layer_lines_are_well_formed(lines: list[dict[str, Any]], verb: str) -> None:
    for line in lines:
        if "digest" in line:
            digest = line["digest"]
            assert line["status"] == f"{verb} {digest[7:19]}"
            assert line["total"] > 0 and 0 < line.get("completed", 1) <= line["total"]


def manifest_digest(registry_host: str, repo: str, tag: str) -> str:
    response = httpx.get(
        f"http://{registry_host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    response.raise_for_status()
    return hashlib.sha256(response.content).hexdigest()


def partial_files(models: Path) -> list[Path]:
    return sorted((models / "blobs").glob("sha256-partial-*"))


def progress_settled(models: Path) -> None:
    """Wait until the stalled download's progress record has stood still for five of its save
    periods. The server rewrites it only when it would change, so it then counts every byte the
    server wrote to the partial file."""

    def settled() -> bool:
        records = [p for p in partial_files(models) if p.name.endswith(".json")]
        return bool(records) and time.time() - records[0].stat().st_mtime > 5 * SAVE_SECONDS

    poll_until(settled, 30, "the download's progress was never saved")


def stalled(proxy: CuttingProxy, what: str) -> None:
    assert proxy.stalled.wait(60), f"{what} never reached half-way"


def waits_for_lock(path: Path) -> bool:
    """Whether a process is blocked on a lock of `path` (a `->` line of /proc/locks)."""
    inode = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "->" and int(fields[6].rsplit(":", 1)[1]) == inode:
            return True
    return False


@pytest.fixture(scope="module")
def pushed_default(
    url: str, registry: Registry, models: Path, default_gguf: Path
) -> dict[str, Any]:
    """The real SmolLM2 model, created here, pushed to the registry and deleted locally."""
    store = Store(models)
    digest = store.import_file(default_gguf)
    name = f"{registry.host}/test/smollm2:135m"
    store.create(name, CreateRequest(files={"smollm2.gguf": digest}, system="Be brief."))
    before = tags(url)[name]
    digests = store.read_manifest(store.resolve(name))[0].digests()
    lines = stream(url, "/api/push", {"model": name, "insecure": True})
    delete(url, name)
    assert name not in tags(url) and not store.has_blob(digest)
    return {
        "name": name, "manifest": before, "blob": digest, "lines": lines,
        "size": default_gguf.stat().st_size, "digests": digests,
    }  # fmt: skip


# ----- push, pull, byte for byte


@pytest.mark.slow
def test_push_then_pull_gives_back_the_same_model(
    url: str, registry: Registry, models: Path, default_gguf: Path, pushed_default: dict[str, Any]
) -> None:
    name = pushed_default["name"]
    push = pushed_default["lines"]
    layers = [s for s in statuses(push) if s.startswith("pushing ") and s != "pushing manifest"]
    assert statuses(push) == ["retrieving manifest", *layers, "pushing manifest", "success"]
    assert {f"pushing {d[7:19]}" for d in pushed_default["digests"]} == set(layers)
    layer_lines_are_well_formed(push, "pushing")
    # The registry holds the very manifest bytes we had.
    assert manifest_digest(registry.host, "test/smollm2", "135m") == pushed_default["manifest"]

    pull = stream(url, "/api/pull", {"model": name, "insecure": True})
    pulled = [s for s in statuses(pull) if s.startswith("pulling ") and s != "pulling manifest"]
    assert statuses(pull) == [
        "pulling manifest", *pulled, "verifying sha256 digest", "writing manifest", "success",
    ]  # fmt: skip
    assert sorted(pulled) == sorted(s.replace("pushing", "pulling") for s in layers)
    layer_lines_are_well_formed(pull, "pulling")
    model_lines = [x for x in pull if x.get("digest") == pushed_default["blob"]]
    assert model_lines[-1]["completed"] == model_lines[-1]["total"] == pushed_default["size"]
    between = [x["completed"] for x in model_lines if 0 < x.get("completed", 0) < x["total"]]
    assert between, "progress is reported while the blob arrives"
    assert between == sorted(between)

    assert tags(url)[name] == pushed_default["manifest"]
    assert digest_file(Store(models).blob_path(pushed_default["blob"])) == digest_file(default_gguf)
    assert partial_files(models) == []
    # Pulling again fetches nothing: every layer is a cache hit.
    again = stream(url, "/api/pull", {"model": name, "insecure": True})
    assert all(x.get("completed") == x.get("total") for x in again if "digest" in x)


@pytest.mark.slow
def test_a_pull_cut_half_way_resumes_where_it_stopped(
    url: str, registry: Registry, models: Path, pushed_default: dict[str, Any]
) -> None:
    forget(url, models, pushed_default)
    proxy = CuttingProxy(registry.port)
    try:
        name = f"{proxy.host}/test/smollm2:135m"
        size = pushed_default["size"]
        proxy.arm(cut_at=size // 2)
        lines = stream(url, "/api/pull", {"model": name, "insecure": True})
        assert lines[-1] == {"status": "success"}, lines[-3:]
        assert proxy.cuts == 1
        # Every part went on from its last byte: the bytes that crossed the proxy are the blob
        # once, plus headers, plus what was in flight at the cut (under a megabyte a part).
        assert size < proxy.downstream_bytes < size + 6 * (1 << 20)
        assert tags(url)[name] == pushed_default["manifest"]
        assert partial_files(models) == []
    finally:
        proxy.close()
        delete(url, f"{proxy.host}/test/smollm2:135m")


@pytest.mark.slow
def test_a_pull_killed_with_the_server_resumes_after_a_restart(
    registry: Registry, tmp_path: Path, pushed_default: dict[str, Any]
) -> None:
    models = tmp_path / "models"
    proxy = CuttingProxy(registry.port)
    name = f"{proxy.host}/test/smollm2:135m"
    size = pushed_default["size"]
    body = {"model": name, "insecure": True}
    try:
        proxy.arm(stall_at=size // 2)
        first = ServerProcess(models, SERVER_ENV)
        try:

            def pull_until_killed() -> None:
                with contextlib.suppress(httpx.TransportError):
                    httpx.post(first.url + "/api/pull", json=body, timeout=60)

            pulling = threading.Thread(target=pull_until_killed, daemon=True)
            pulling.start()
            stalled(proxy, "the pull")
            progress_settled(models)
            first.proc.kill()
            first.proc.wait()
        finally:
            first.stop()
        sent_before = proxy.downstream_bytes
        assert sent_before >= size // 2
        # Consistent: no manifest, no blob, only the partial download (and its progress).
        store = Store(models)
        assert store.list() == [] and not store.has_blob(pushed_default["blob"])
        assert [p.name.endswith(".json") for p in partial_files(models)] == [False, True]

        proxy.release()
        proxy.arm()
        with_restart = ServerProcess(models, SERVER_ENV)
        try:
            lines = stream(with_restart.url, "/api/pull", body)
            assert lines[-1] == {"status": "success"}
            assert tags(with_restart.url)[name] == pushed_default["manifest"]
        finally:
            with_restart.stop()
        # The second pull fetched about the half the first did not (what the first had not
        # yet recorded, at most a few megabytes, comes again).
        assert proxy.downstream_bytes < size - sent_before + 16 * (1 << 20)
        assert sent_before + proxy.downstream_bytes < size * 1.2
        assert partial_files(models) == []
    finally:
        proxy.close()


@pytest.mark.slow
def test_a_pull_whose_client_leaves_resumes_at_the_next_pull(
    url: str, registry: Registry, models: Path, pushed_default: dict[str, Any]
) -> None:
    forget(url, models, pushed_default)
    proxy = CuttingProxy(registry.port)
    name = f"{proxy.host}/test/smollm2:135m"
    size = pushed_default["size"]
    body = {"model": name, "insecure": True}
    try:
        proxy.arm(stall_at=size // 2)
        with httpx.stream("POST", url + "/api/pull", json=body, timeout=60) as response:
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection
            assert json.loads(next(lines)) == {"status": "pulling manifest"}
            stalled(proxy, "the pull")
            progress_settled(models)
        sent_before = proxy.downstream_bytes  # the client hung up: the server stops the pull
        assert sent_before >= size // 2
        proxy.release()
        proxy.arm()
        again = stream(url, "/api/pull", body)
        assert again[-1] == {"status": "success"}
        assert proxy.downstream_bytes < size - sent_before + 16 * (1 << 20)
        assert tags(url)[name] == pushed_default["manifest"]
        assert partial_files(models) == []
    finally:
        proxy.close()
        delete(url, name)


@pytest.mark.slow
def test_two_pulls_at_once_fetch_each_blob_once(
    url: str, registry: Registry, models: Path, pushed_default: dict[str, Any]
) -> None:
    """Pull A is held still half-way; pull B of the same blob (under another name, through its
    own counting proxy) waits for A's download, shows its progress, and fetches none of it."""
    forget(url, models, pushed_default)
    proxies = [CuttingProxy(registry.port) for _ in range(2)]
    names = [f"{p.host}/test/smollm2:135m" for p in proxies]
    size = pushed_default["size"]
    results: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    ended: dict[int, float] = {}
    following = threading.Event()  # B reports A's download, stalled past a quarter, as its own

    def pull(i: int) -> None:
        body = {"model": names[i], "insecure": True}
        with httpx.stream("POST", url + "/api/pull", json=body, timeout=120) as response:
            assert response.status_code == 200, response.read()
            for raw in response.iter_lines():
                if raw.strip():
                    line = json.loads(raw)
                    results[i].append(line)
                    mine = line.get("digest") == pushed_default["blob"]
                    if i == 1 and mine and size // 4 < line.get("completed", 0) < size:
                        following.set()
        ended[i] = time.monotonic()

    try:
        proxies[0].arm(stall_at=size // 2)
        proxies[1].arm()
        threads = [threading.Thread(target=pull, args=(i,)) for i in range(2)]
        threads[0].start()
        stalled(proxies[0], "pull A")
        threads[1].start()
        assert following.wait(60), "B never showed A's progress"
        released = time.monotonic()
        proxies[0].release()
        for thread in threads:
            thread.join(120)
        assert ended[1] > released, "B waits for A"
        assert [results[i][-1] for i in range(2)] == [{"status": "success"}] * 2
        assert size < proxies[0].downstream_bytes < size * 1.1
        assert proxies[1].downstream_bytes < 1 << 20, "B fetched none of the model"
        shown = [
            x.get("completed", 0) for x in results[1] if x.get("digest") == pushed_default["blob"]
        ]
        assert any(size // 4 < c < size for c in shown), "B showed A's progress"
    finally:
        proxies[0].release()
        for proxy in proxies:
            proxy.close()
        for name in names:
            if name in tags(url):
                delete(url, name)


@pytest.mark.slow
def test_two_servers_on_one_store_fetch_each_blob_once(
    registry: Registry, tmp_path: Path, pushed_default: dict[str, Any]
) -> None:
    """Server A's download is held still half-way; server B, on the same store, pulls the same
    blob meanwhile (under another name, through its own counting proxy): B waits for A's lock,
    then finds the blob published, and fetches none of it."""
    models = tmp_path / "models"
    proxies = [CuttingProxy(registry.port) for _ in range(2)]
    servers = [ServerProcess(models, SERVER_ENV) for _ in range(2)]
    size = pushed_default["size"]
    results: dict[int, list[dict[str, Any]]] = {}

    def pull(i: int) -> None:
        name = f"{proxies[i].host}/test/smollm2:135m"
        results[i] = stream(servers[i].url, "/api/pull", {"model": name, "insecure": True})

    try:
        proxies[0].arm(stall_at=size // 2)
        proxies[1].arm()
        threads = [threading.Thread(target=pull, args=(i,)) for i in range(2)]
        threads[0].start()
        stalled(proxies[0], "server A's download")
        threads[1].start()
        # The weights' download (B writes its own small layers meanwhile, each a partial file
        # for a moment).
        weights = pushed_default["blob"].partition(":")[2]
        [partial] = [p for p in partial_files(models) if p.name.endswith(weights)]
        poll_until(lambda: waits_for_lock(partial), 60, "B never waited for A's lock")
        assert threads[1].is_alive(), "B waits for A"
        proxies[0].release()
        for thread in threads:
            thread.join(120)
        assert [results[i][-1] for i in range(2)] == [{"status": "success"}] * 2
        assert size < proxies[0].downstream_bytes < size * 1.1
        assert proxies[1].downstream_bytes < 1 << 20, "B fetched none of the model"
        assert partial_files(models) == []
    finally:
        proxies[0].release()
        for server in servers:
            server.stop()
        for proxy in proxies:
            proxy.close()


def test_a_blob_from_another_repository_is_mounted_not_sent(
    url: str, registry: Registry, models: Path, tmp_path: Path
) -> None:
    """A layer whose `from` names another repository of the same registry is mounted there
    (cross-repository blob mount): the registry answers 201 and no byte of it is sent."""
    proxy = CuttingProxy(registry.port)  # counts what is sent to the registry
    source = f"{proxy.host}/test/source:v1"
    target = f"{proxy.host}/test/target:v1"
    store = Store(models)
    gguf = write_tiny_gguf(tmp_path / "two-mb.gguf", embd=512)  # 2 MiB of weights
    store.create(source, CreateRequest(files={"m.gguf": store.import_file(gguf)}))
    try:
        assert stream(url, "/api/push", {"model": source, "insecure": True})[-1] == {
            "status": "success"
        }
        manifest, _, _ = store.read_manifest(store.resolve(source))
        model = manifest.layers[0]
        from_source = attrs.evolve(model, from_=source)
        mounted = attrs.evolve(manifest, layers=(from_source, *manifest.layers[1:]))
        store.write_manifest(store.name_for_write(target), mounted)
        proxy.arm()
        lines = stream(url, "/api/push", {"model": target, "insecure": True})
        assert lines[-1] == {"status": "success"}
        assert [x.get("completed") for x in lines if x.get("digest") == model.digest][-1] == (
            model.size
        )
        assert model.size > 2 << 20 and proxy.upstream_bytes < 64 << 10
        mounted_there = httpx.head(f"{registry.url}/v2/test/target/blobs/{model.digest}")
        assert mounted_there.status_code == 200
    finally:
        proxy.close()
        delete(url, target)
        delete(url, source)


@pytest.mark.slow
def test_a_pull_that_replaces_a_model_removes_its_unused_layers(
    registry: Registry, tmp_path: Path
) -> None:
    """With pruning on (no OLLAMA_NOPRUNE), a pull over an older version of the same name says
    `removing unused layers` and removes the blobs only the older version used."""
    models = tmp_path / "models"
    store = Store(models)
    name = f"{registry.host}/test/versions:latest"
    one = store.import_file(write_tiny_gguf(tmp_path / "1.gguf", extra={"general.name": "one"}))
    store.create(name, CreateRequest(files={"m.gguf": one}))
    manifest_one = store.read_manifest(store.resolve(name))[1]
    two = store.import_file(write_tiny_gguf(tmp_path / "2.gguf", extra={"general.name": "two"}))
    store.create(name, CreateRequest(files={"m.gguf": two}), prune=False)
    server = ServerProcess(models, {"OLLAMA_NOPRUNE": ""})
    try:
        pushed = stream(server.url, "/api/push", {"model": name, "insecure": True})
        assert pushed[-1] == {"status": "success"}
        store.write_manifest(store.resolve(name), manifest_one)  # version one here again
        lines = stream(server.url, "/api/pull", {"model": name, "insecure": True})
        assert statuses(lines)[-3:] == ["writing manifest", "removing unused layers", "success"]
        assert not store.has_blob(one) and store.has_blob(two)
        again = stream(server.url, "/api/pull", {"model": name, "insecure": True})
        assert "removing unused layers" not in statuses(again)
    finally:
        server.stop()


# ----- faults


def test_a_corrupted_blob_on_the_registry_is_refused(
    url: str, registry: Registry, models: Path, tiny: str
) -> None:
    name = f"{registry.host}/test/corrupt:v1"
    copy(url, tiny, name)
    assert stream(url, "/api/push", {"model": name, "insecure": True})[-1]["status"] == "success"
    store = Store(models)
    manifest, _, _ = store.read_manifest(store.resolve(name))
    blob = manifest.layers[0].digest
    delete(url, name)
    delete(url, tiny)  # the blobs go with the last model that used them
    stored = registry.blob_file(blob)
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        lines = stream(url, "/api/pull", {"model": name, "insecure": True})
        assert lines[-1]["error"].startswith(
            f"digest mismatch, file must be downloaded again: want {blob}, got sha256:"
        )
        assert "verifying sha256 digest" in statuses(lines)
        assert "writing manifest" not in statuses(lines)
        assert name not in tags(url) and not store.has_blob(blob)
        # The bad download is gone; the others stay as partials (not blobs) for the next pull.
        assert not [p for p in partial_files(models) if blob[7:] in p.name]
    finally:
        stored.write_bytes(original)
    assert stream(url, "/api/pull", {"model": name, "insecure": True})[-1]["status"] == "success"
    assert store.has_blob(blob) and partial_files(models) == []
    copy(url, name, tiny)


class _Failing(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"errors":[{"code":"UNKNOWN","message":"storage is on fire"}]}'
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_registry_errors_give_ollamas_texts(url: str, registry: Registry, tiny: str) -> None:
    missing = {"model": f"{registry.host}/test/nothing:here", "insecure": True}
    lines = stream(url, "/api/pull", missing)
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    response = httpx.post(url + "/api/pull", json={**missing, "stream": False})
    assert response.status_code == 500
    assert response.json() == {"error": "pull model manifest: file does not exist"}

    failing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=failing.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{failing.server_address[1]}"
        lines = stream(url, "/api/pull", {"model": f"{host}/test/m", "insecure": True})
        assert lines[-1] == {
            "error": 'pull model manifest: 500: {"errors":[{"code":"UNKNOWN",'
            '"message":"storage is on fire"}]}'
        }
    finally:
        failing.shutdown()
        failing.server_close()

    # A plain-HTTP name without `insecure`: refused before anything is sent.
    response = httpx.post(url + "/api/pull", json={"model": f"http://{registry.host}/test/m"})
    assert response.status_code == 500 and response.json() == {"error": "insecure protocol http"}
    # Invalid names are the client's error.
    response = httpx.post(url + "/api/pull", json={"model": "bad//name"})
    assert response.status_code == 400 and response.json() == {"error": "invalid model name"}
    # Pushing what is not here.
    lines = stream(url, "/api/push", {"model": f"{registry.host}/test/absent", "insecure": True})
    assert statuses(lines)[:2] == ["retrieving manifest", "couldn't retrieve manifest"]
    assert "not found" in lines[-1]["error"]
    # The server keeps serving.
    assert httpx.get(url + "/api/version").status_code == 200


# ----- auth


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_auth_challenges_are_answered_with_netrc_credentials(
    url: str, registry: Registry, netrc: Path, tiny: str, scheme: str
) -> None:
    proxy = AuthProxy(registry.url, scheme)
    name = f"{proxy.host}/test/private-{scheme}:v1"
    body = {"model": name, "insecure": True}
    try:
        copy(url, tiny, name)
        netrc.write_text("")
        lines = stream(url, "/api/push", body)
        if scheme == "basic":
            assert lines[-1] == {"error": "unauthorized: access denied"}
        else:  # the token service itself refuses us
            assert lines[-1]["error"].startswith("401: ")
        netrc.write_text("machine 127.0.0.1 login user password secret\n")
        assert stream(url, "/api/push", body)[-1] == {"status": "success"}
        delete(url, name)
        assert stream(url, "/api/pull", body)[-1] == {"status": "success"}
        assert name in tags(url)
        if scheme == "bearer":
            assert proxy.token_requests, "a token was asked for"
            assert f"Bearer {AuthProxy.TOKEN}" in proxy.seen_auth
            assert "scope=repository%3Atest%2Fmodel%3Apull%2Cpush" in proxy.token_requests[-1]
    finally:
        netrc.write_text("")
        proxy.close()


def test_a_token_service_elsewhere_never_gets_the_registrys_credentials(
    url: str, registry: Registry, netrc: Path, tiny: str
) -> None:
    tokens = AuthProxy(registry.url, "bearer")  # only its /token is used
    proxy = AuthProxy(registry.url, "bearer", realm_host=tokens.host)
    name = f"{proxy.host}/test/elsewhere:v1"
    try:
        copy(url, tiny, name)
        netrc.write_text("machine 127.0.0.1 login user password secret\n")
        lines = stream(url, "/api/push", {"model": name, "insecure": True})
        # Over plain http, to another host: asked with no credentials, and refused.
        assert lines[-1]["error"].startswith("401: ")
        assert tokens.token_requests and tokens.seen_auth == [""] * len(tokens.seen_auth)
    finally:
        netrc.write_text("")
        delete(url, name)
        proxy.close()
        tokens.close()


# ----- clients


def test_the_ollama_client_parses_every_status(url: str, registry: Registry, tiny: str) -> None:
    name = f"{registry.host}/test/client:v1"
    copy(url, tiny, name)
    with ollama.Client(host=url) as client:  # closed: an idle connection delays shutdown
        pushed = list(client.push(name, insecure=True, stream=True))
        assert next(p.status for p in pushed) == "retrieving manifest"
        assert pushed[-1].status == "success"
        layers = [p for p in pushed if p.digest]
        assert layers and all(p.status == f"pushing {p.digest[7:19]}" and p.total for p in layers)
        client.delete(name)
        pulled = list(client.pull(name, insecure=True, stream=True))
        assert pulled[0].status == "pulling manifest" and pulled[-1].status == "success"
        layers = [p for p in pulled if p.digest]
        assert layers and all(p.status == f"pulling {p.digest[7:19]}" for p in layers)
        assert layers[-1].completed == layers[-1].total
        assert client.pull(name, insecure=True).status == "success"  # stream=False: one object
        with pytest.raises(ollama.ResponseError, match="file does not exist"):
            list(client.pull(f"{registry.host}/test/absent", insecure=True, stream=True))
        client.delete(name)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": url}
    return subprocess.run(
        [sys.executable, "-m", "trio_ollama", *args],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
def test_the_cli_pulls_and_pushes_with_progress(url: str, registry: Registry, tiny: str) -> None:
    name = f"{registry.host}/test/cli:v1"
    copy(url, tiny, name)
    pushed = cli(url, "push", name, "--insecure")
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stderr.splitlines()
    assert lines[0] == "retrieving manifest" and lines[-2:] == ["pushing manifest", "success"]
    assert any(line.startswith("pushing ") and "100%" in line for line in lines)
    delete(url, name)
    pulled = cli(url, "pull", name, "--insecure")
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stderr.splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    bars = [line for line in lines if line.startswith("pulling ") and "%" in line]
    assert bars and all(" 100% " in bar for bar in bars)
    failed = cli(url, "pull", f"{registry.host}/test/absent", "--insecure")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == "Error: pull model manifest: file does not exist"
    delete(url, name)
