"""Hostile registries (issue 29, items 7 and 9; issue 27, item 7): a registry, or a model name,
that no URL can hold, manifests built to break a parser, a size claim no disk can hold, an
upload cut short. Each pull and push ends in Ollama's shape (a 500 with `{"error": ...}`, or a
last `{"error": ...}` line when streamed) with a text that names the fault, never Python's; the
server and its runner are the same afterwards, and the store holds nothing half-written."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.lowlevel

from tests.registry import HostileRegistry, hostile_registry
from tests.server import ServerProcess
from trio_ollama.names import parse_name
from trio_ollama.registry.client import RegistryError, Repository
from trio_ollama.registry.push import upload_blob
from trio_ollama.registry.transfer import disk_errors
from trio_ollama.store import Store
from trio_ollama.store.manifest import MEDIA_MODEL, Layer

MODEL = "smollm2:135m"
CONFIG_DIGEST = "sha256:" + "c" * 64
LAYER_DIGEST = "sha256:" + "1a" * 32
# What no answer may show: the nursery's wrapping, a traceback, Python's names for what failed.
PYTHON = ("ExceptionGroup", "Traceback", "internal error", "InvalidURL", "RecursionError",
          "ValueError", "TypeError", "OverflowError", "KeyError", "OSError", "Errno")  # fmt: skip


def manifest(**fields: Any) -> bytes:
    """A manifest of one layer and a config, with `fields` replaced."""
    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": CONFIG_DIGEST, "size": 2},
        "layers": [{"mediaType": MEDIA_MODEL, "digest": LAYER_DIGEST, "size": 10}],
    }  # fmt: skip
    data.update(fields)
    return json.dumps(data).encode()


def with_layer_size(size: str) -> bytes:
    """A manifest whose layer's size is the literal `size` (JSON that Python cannot write)."""
    return manifest().replace(b'"size": 10', b'"size": ' + size.encode())


NESTED = b'{"schemaVersion": 2, "config": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"


# ----- an upload cut short closes its file (issue 27, item 7)


def open_files(path: Path) -> list[str]:
    """This process's descriptors open on `path`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(fd)
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return found


async def test_an_upload_cut_short_closes_its_file_at_once(tmp_path: Path) -> None:
    """The registry answers a PATCH after its first bytes and closes the connection: httpx
    stops reading the body, whose generator held the blob's file open until the garbage
    collector came. It is closed when the request ends."""
    store = Store(tmp_path / "models")
    # More than loopback's socket buffers hold: the send fails part-way through.
    data = os.urandom(32 << 20)
    digest, _ = store.write_blob_bytes(data)
    layer = Layer(media_type=MEDIA_MODEL, digest=digest, size=len(data))
    send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)
    with hostile_registry() as registry:
        name = parse_name(f"{registry.host}/test/m:v1")
        async with httpx.AsyncClient() as http:
            repo = Repository(name, http, insecure=True)
            with pytest.raises(RegistryError) as caught:
                await upload_blob(repo, store, layer, send)
            # No checkpoint since the failure: nothing else had a chance to close it.
            assert open_files(store.blob_path(digest)) == []
    assert [m for m, _ in registry.requests] == ["HEAD", "POST", "PATCH"]
    assert not any(word in caught.value.message for word in PYTHON), caught.value.message
    send.close()
    receive.close()


# ----- what a registry says is bounded and checked


def mock_repository(handle: Callable[[httpx.Request], httpx.Response]) -> Repository:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return Repository(parse_name("127.0.0.1:1/test/m:v1"), http, insecure=True)


def token_service(answer: bytes) -> Callable[[httpx.Request], httpx.Response]:
    """A registry that wants a token, and a token service that answers `answer`."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, content=answer)
        challenge = 'Bearer realm="http://127.0.0.1:1/token",service="registry"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    return handle


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        # 64 KB of brackets: Python's parser ran out of stack (a RecursionError, uncaught).
        (b"[" * 40_000, "invalid JSON: exceeded max depth of 256"),
        (b'{"token": 5}', "json: cannot unmarshal number into Go struct field "
                          "TokenResponse.token of type string"),
        (b'"token"', "json: cannot unmarshal string into Go value of type api.TokenResponse"),
        (b'{"token": ""}', "the registry's token service answered without a token"),
        # It would go back in a header: httpx refused it with Python's UnicodeEncodeError.
        ('{"token": "é"}'.encode(), "the registry's token service answered with an invalid token"),
    ],
)  # fmt: skip
async def test_a_token_service_answer_is_decoded_as_go_and_checked(
    answer: bytes, error: str
) -> None:
    repo = mock_repository(token_service(answer))
    with pytest.raises(RegistryError) as caught:
        await repo.manifest("v1")
    assert caught.value.message.endswith(error), caught.value.message


async def test_a_token_is_used() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t0k3n"})
        if seen[-1] != "Bearer t0k3n":
            challenge = 'Bearer realm="http://127.0.0.1:1/token",service="registry"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, content=b"{}")

    assert await mock_repository(handle).manifest("v1") == b"{}"
    assert seen == ["", "", "Bearer t0k3n"]


async def test_an_endless_answer_is_read_within_a_bound() -> None:
    """An answer whose body is not used (an upload's 202) was read whole: an endless one held
    the pull for ever, growing in memory."""

    async def endless() -> Any:
        while True:
            yield b"x" * 65536
            await trio.lowlevel.checkpoint()

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, content=endless(), headers={"Location": "/v2/uploads/1"})

    repo = mock_repository(handle)
    with trio.fail_after(10):
        response = await repo.request("POST", repo.url("blobs", "uploads/"))
        assert response.status_code == 202
        with pytest.raises(RegistryError, match="manifest is larger than"):
            await repo.manifest("v1")


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("http://[::1", "parse \"http://[::1\": missing ']' in host"),
        ("file:///etc/passwd", 'unsupported protocol scheme "file"'),
    ],
)
def test_an_upload_location_is_a_web_url(location: str, error: str) -> None:
    repo = mock_repository(lambda request: httpx.Response(404))
    assert repo.absolute("/v2/uploads/1?state=x") == "http://127.0.0.1:1/v2/uploads/1?state=x"
    with pytest.raises(RegistryError) as caught:
        repo.absolute(location)
    assert caught.value.message == error


# ----- through the real server


@pytest.fixture(scope="module")
def registry() -> Iterator[HostileRegistry]:
    with hostile_registry() as registry:
        yield registry


@pytest.fixture(scope="module")
def models(real_server: ServerProcess) -> Path:
    return real_server.models


@pytest.fixture(scope="module")
def server(real_server: ServerProcess, registry: HostileRegistry) -> ServerProcess:
    # The model loaded once, so that every case below meets the same runner; and copies of it
    # under the names the pushes use.
    r = httpx.post(real_server.url + "/api/generate", json={"model": MODEL}, timeout=120)
    assert r.status_code == 200, r.text
    for name in (f"{registry.host}/test/m:v1", f"127.0.0.1:{registry.port}:1/test/m:v1"):
        copy = {"source": MODEL, "destination": name}
        r = httpx.post(real_server.url + "/api/copy", json=copy, timeout=30)
        assert r.status_code == 200, r.text
    return real_server


def store_files(models: Path) -> set[str]:
    return {str(p.relative_to(models)) for p in models.rglob("*")}


@attrs.frozen
class Prefix:
    """An error known by its start only (a Go type's package, the disk's free bytes)."""

    text: str


Setup = Callable[[HostileRegistry, Path], None]
Expected = Callable[[HostileRegistry, Store], str | Prefix]


def serve(manifest_bytes: bytes = b"{}", challenge: str = "", location: str = "") -> Setup:
    def setup(registry: HostileRegistry, models: Path) -> None:
        registry.manifest = manifest_bytes
        registry.challenge = challenge
        registry.location = location or "/v2/uploads/1"

    return setup


def serve_twice_the_free_disk(registry: HostileRegistry, models: Path) -> None:
    size = 2 * shutil.disk_usage(models).free + (1 << 30)
    serve(with_layer_size(str(size)))(registry, models)


def first_layer(store: Store) -> str:
    found = store.resolve(parse_name(MODEL))
    return store.read_manifest(found)[0].layers[0].digest


BAD_REALM = 'Bearer realm="http://[::1",service="registry",scope="repository:test/m:pull"'
MISSING_BRACKET = "parse \"http://[::1\": missing ']' in host"
MANIFEST = "pull model manifest: "

# (id, route, model ({host}: the registry's, {port}: its port), the registry's answers, the error)
CASES: list[tuple[str, str, str, Setup, Expected]] = [
    (
        "pull from a host no URL can hold", "pull", "127.0.0.1:{port}:1/test/m:v1", serve(),
        lambda r, s: f'{MANIFEST}parse "http://127.0.0.1:{r.port}:1/v2/test/m/manifests/v1": '
                     f"invalid port: '{r.port}:1'",
    ),
    (
        "push to a host no URL can hold", "push", "127.0.0.1:{port}:1/test/m:v1", serve(),
        lambda r, s: f'parse "http://127.0.0.1:{r.port}:1/v2/test/m/blobs/{first_layer(s)}": '
                     f"invalid port: '{r.port}:1'",
    ),
    (
        "pull with a token realm no URL can hold", "pull", "{host}/test/m:v1",
        serve(manifest(), challenge=BAD_REALM), lambda r, s: MANIFEST + MISSING_BRACKET,
    ),
    (
        "push with a token realm no URL can hold", "push", "{host}/test/m:v1",
        serve(challenge=BAD_REALM), lambda r, s: MISSING_BRACKET,
    ),
    (
        "push to an upload Location no URL can hold", "push", "{host}/test/m:v1",
        serve(location="http://[::1"), lambda r, s: MISSING_BRACKET,
    ),
    (
        "pull a manifest nested 200,000 deep", "pull", "{host}/test/m:v1", serve(NESTED),
        lambda r, s: MANIFEST + "invalid JSON: exceeded max depth of 256",
    ),
    (
        'pull a manifest of schemaVersion "two"', "pull", "{host}/test/m:v1",
        serve(manifest(schemaVersion="two")),
        lambda r, s: MANIFEST + "json: cannot unmarshal string into Go struct field "
                                "Manifest.schemaVersion of type int",
    ),
    (
        "pull a manifest whose layers are 5", "pull", "{host}/test/m:v1",
        serve(manifest(layers=5)),
        lambda r, s: Prefix(MANIFEST + "json: cannot unmarshal number into Go struct field "
                                       "Manifest.layers of type []"),
    ),
    (
        "pull a layer of size 1e999", "pull", "{host}/test/m:v1",
        serve(with_layer_size("1e999")),
        lambda r, s: MANIFEST + "invalid JSON: number 1e999 is out of range",
    ),
    (
        "pull a layer of 10^18 bytes", "pull", "{host}/test/m:v1",
        serve(with_layer_size(str(10**18))),
        lambda r, s: Prefix("pulling 1a1a1a1a1a1a requires more disk space (1000000 TB) "
                            "than is available ("),
    ),
    (
        "pull a layer of twice the free disk", "pull", "{host}/test/m:v1",
        serve_twice_the_free_disk,
        lambda r, s: Prefix("pulling 1a1a1a1a1a1a requires more disk space ("),
    ),
]  # fmt: skip


def check_message(message: str, expected: str | Prefix) -> None:
    if isinstance(expected, Prefix):
        assert message.startswith(expected.text), message
    else:
        assert message == expected
    assert not any(word in message for word in PYTHON), message


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("route", "name", "setup", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_hostile_registry_gets_a_clear_error_and_breaks_nothing(
    server: ServerProcess,
    registry: HostileRegistry,
    models: Path,
    route: str,
    name: str,
    setup: Setup,
    expected: Expected,
    stream: bool,
) -> None:
    setup(registry, models)
    before = store_files(models)
    runners = server.runners()
    model = name.format(host=registry.host, port=registry.port)
    body = {"model": model, "insecure": True, "stream": stream}
    r = httpx.post(f"{server.url}/api/{route}", json=body, timeout=60)
    want = expected(registry, Store(models))
    if stream:
        # As Ollama: the first status went out, so the error is the stream's last line.
        assert r.status_code == 200, r.text
        lines = [json.loads(line) for line in r.text.splitlines()]
        first = "pulling manifest" if route == "pull" else "retrieving manifest"
        assert lines[0] == {"status": first}, lines
        assert set(lines[-1]) == {"error"}, lines
        check_message(lines[-1]["error"], want)
    else:
        assert r.status_code == 500, r.text
        assert set(r.json()) == {"error"}, r.text
        check_message(r.json()["error"], want)
    # Nothing half-written (no partial download, no manifest), nothing else changed.
    assert store_files(models) == before
    assert server.proc.poll() is None, "the server died"
    assert server.runners() == runners, "the runner died or was replaced"
    again = {"model": MODEL, "prompt": "1, 2,", "raw": True, "stream": False,
             "options": {"num_predict": 1}}  # fmt: skip
    assert httpx.post(server.url + "/api/generate", json=again, timeout=60).status_code == 200


def test_a_failing_disk_is_worded_as_go_words_it() -> None:
    with pytest.raises(RegistryError) as caught, disk_errors():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/models/blobs/sha256-partial-x")
    assert caught.value.message == "/models/blobs/sha256-partial-x: no space left on device"
