"""Registry downloads against an in-process mock registry (httpx's MockTransport): the failure
paths and races that a real registry rarely shows on demand. The real registry's tests are in
tests/test_registry.py."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from trio_ollama.names import parse_name
from trio_ollama.registry.client import NotFoundError, RegistryError, Repository
from trio_ollama.registry.download import SAVE_EVERY, BlobDownload, Downloads
from trio_ollama.registry.pull import TransferOptions
from trio_ollama.store import Store

BLOBS = {name: (name * 4096).encode() for name in ("a", "b")}
DIGESTS = {name: "sha256:" + hashlib.sha256(data).hexdigest() for name, data in BLOBS.items()}
BY_DIGEST = {DIGESTS[name]: data for name, data in BLOBS.items()}

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def ranged(delay: float = 0.0, status: int | None = None) -> Handler:
    """A registry that serves the blobs' byte ranges, slowly if asked, or fails with `status`."""

    async def handle(request: httpx.Request) -> httpx.Response:
        await trio.sleep(delay)
        if status is not None:
            return httpx.Response(status, text="boom")
        data = BY_DIGEST[request.url.path.rsplit("/", 1)[1]]
        start, end = (int(x) for x in request.headers["Range"].removeprefix("bytes=").split("-"))
        headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        return httpx.Response(206, content=data[start : end + 1], headers=headers)

    return handle


async def pull(store: Store, downloads: Downloads, handler: Handler, order: list[str]) -> None:
    send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)
    name = parse_name("127.0.0.1:1/test/m:v1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        repo = Repository(name, http, insecure=True)
        for blob in order:
            size = len(BLOBS[blob])
            await BlobDownload(repo, store, downloads, DIGESTS[blob], size, 4, 1 << 20).run(send)
    send.close()
    receive.close()


async def test_two_pulls_wanting_the_same_blobs_in_other_orders_both_finish(
    tmp_path: Path,
) -> None:
    """Each pull held every blob it had until the end: [a, b] and [b, a] waited for each other
    for ever. A blob's claim now ends with that blob."""
    store = Store(tmp_path / "models")
    downloads = Downloads()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pull, store, downloads, ranged(delay=0.2), ["a", "b"])
            nursery.start_soon(pull, store, downloads, ranged(delay=0.2), ["b", "a"])
    for blob in ("a", "b"):
        assert store.blob_path(DIGESTS[blob]).read_bytes() == BLOBS[blob]
    assert downloads.active == {}


async def test_progress_is_saved_at_the_interval_asked(
    tmp_path: Path, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`save_every` sets how often a running download saves its parts' progress (a real
    server's tests set it small rather than sleep through the default second). Virtual time
    stands still here but where the test moves it."""
    assert BlobDownload.__attrs_attrs__.save_every.default == SAVE_EVERY == 1.0
    assert TransferOptions().save_every == SAVE_EVERY
    store = Store(tmp_path / "models")
    saved = threading.Event()  # a progress record was written (in a worker thread)
    write_bytes = store.layout.write_bytes

    def spy(target: Path, data: bytes) -> None:
        write_bytes(target, data)
        if target.suffix == ".json":
            saved.set()

    monkeypatch.setattr(store.layout, "write_bytes", spy)
    second_part, release = trio.Event(), trio.Event()
    serve = ranged()
    asked: list[str] = []

    async def first_part_only(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers["Range"])
        if len(asked) > 1:
            second_part.set()  # one stream: the first part is written and counted
            await release.wait()
        return await serve(request)

    send, _receive = trio.open_memory_channel[dict[str, Any]](math.inf)
    name = parse_name("127.0.0.1:1/test/m:v1")
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(first_part_only)) as http,
        trio.open_nursery() as nursery,
    ):
        repo = Repository(name, http, insecure=True)
        size = len(BLOBS["a"])
        download = BlobDownload(
            repo, store, Downloads(), DIGESTS["a"], size, 1, size // 4, save_every=30
        )
        nursery.start_soon(download.run, send)
        await second_part.wait()
        mock_clock.jump(29)
        assert not await trio.to_thread.run_sync(saved.wait, 0.5), "saved before its time"
        mock_clock.jump(1)
        assert await trio.to_thread.run_sync(saved.wait, 10), "not saved at 30 s"
        record = json.loads(download.progress_file.read_bytes())
        first = int(asked[0].removeprefix("bytes=").split("-")[0]) // (size // 4)
        assert record["completed"] == [size // 4 if i == first else 0 for i in range(4)]
        release.set()
    assert store.blob_path(DIGESTS["a"]).read_bytes() == BLOBS["a"]


@pytest.mark.parametrize(("status", "error"), [(404, NotFoundError), (403, RegistryError)])
async def test_a_failed_blob_download_raises_the_registrys_error_as_itself(
    tmp_path: Path, status: int, error: type[Exception]
) -> None:
    """Not inside the parts' exception groups: the API answers its text, not an internal
    error, and waiting pulls see it as this blob's failure."""
    store = Store(tmp_path / "models")
    downloads = Downloads()
    with pytest.raises(error) as caught:
        await pull(store, downloads, ranged(status=status), ["a"])
    assert type(caught.value) is error
    assert str(caught.value) == ("file does not exist" if status == 404 else "403: boom")
    assert downloads.active == {}
    assert not store.has_blob(DIGESTS["a"])


async def test_a_server_error_on_a_part_is_retried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = Store(tmp_path / "models")
    calls = []
    good = ranged()

    async def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= 2:
            return httpx.Response(503, text="try later")
        return await good(request)

    await pull(store, Downloads(), flaky, ["a"])
    assert len(calls) == 3
    assert store.blob_path(DIGESTS["a"]).read_bytes() == BLOBS["a"]


async def test_blob_requests_ask_for_the_bytes_themselves(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    good = ranged()

    async def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return await good(request)

    await pull(Store(tmp_path / "models"), Downloads(), spy, ["a"])
    assert [r.headers["Accept-Encoding"] for r in seen] == ["identity"]


def test_the_registrys_credentials_go_to_the_registry_only() -> None:
    name = parse_name("registry.test/ns/m:v1")
    repo = Repository(name, httpx.AsyncClient(), authorization="Bearer secret")
    inside = repo._build("GET", repo.blob_url(DIGESTS["a"]), None, None)
    assert inside.headers["Authorization"] == "Bearer secret"
    for elsewhere in ("https://uploads.storage.test/x?state=1", "http://registry.test/v2/ns/m"):
        request = repo._build("PATCH", elsewhere, None, None)
        assert "Authorization" not in request.headers, elsewhere


async def _push_blob(tmp_path: Path, handler: Handler) -> list[dict[str, Any]]:
    """Upload blob "a" from a store to the mock registry; the statuses it sent."""
    from trio_ollama.registry.push import upload_blob
    from trio_ollama.store.manifest import Layer

    store = Store(tmp_path / "models")
    store.write_blob_bytes(BLOBS["a"])
    layer = Layer(media_type="application/vnd.ollama.image.model", digest=DIGESTS["a"],
                  size=len(BLOBS["a"]))  # fmt: skip
    send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)
    name = parse_name("127.0.0.1:1/test/m:v1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        try:
            await upload_blob(Repository(name, http, insecure=True), store, layer, send)
        finally:
            send.close()
    return [status async for status in receive]


def uploads(fail_patch: int | None = None, challenge_first: bool = False) -> Handler:
    """A registry's upload endpoints: HEAD says the blob is missing, POST starts, PATCH takes
    the bytes (failing with `fail_patch`, or asking once for a token), PUT ends."""
    asked = []

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "t"})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/test/m/blobs/uploads/1"})
        if request.method == "PATCH":
            await request.aread()
            if fail_patch is not None:
                return httpx.Response(fail_patch, text="no")
            if challenge_first and not asked:
                asked.append(request)
                realm = 'Bearer realm="http://127.0.0.1:1/token",service="r"'
                return httpx.Response(401, headers={"WWW-Authenticate": realm})
            await trio.sleep(0.2)  # the progress ticker reports what was counted meanwhile
            return httpx.Response(202, headers={"Location": "/v2/test/m/blobs/uploads/1"})
        return httpx.Response(201)

    return handle


async def test_a_failed_upload_raises_the_registrys_error_as_itself(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as caught:
        await _push_blob(tmp_path, uploads(fail_patch=403))
    assert type(caught.value) is RegistryError and str(caught.value) == "403: no"


async def test_a_chunk_sent_again_after_a_401_counts_once(tmp_path: Path) -> None:
    statuses = await _push_blob(tmp_path, uploads(challenge_first=True))
    total = len(BLOBS["a"])
    assert all(s.get("completed", 0) <= total for s in statuses), statuses
    assert statuses[-1]["completed"] == total
