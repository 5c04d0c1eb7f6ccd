"""`push`: each blob the registry lacks (a HEAD says), uploaded with POST, PATCH and PUT or
mounted from the repository it came from, then the manifest, with Ollama's statuses
(`server/images.go` `PushModel`, `server/upload.go`)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx
import trio

from trio_ollama.names import ModelName, parse_name
from trio_ollama.registry.client import RegistryError, Repository, open_repository
from trio_ollama.registry.download import first_failure
from trio_ollama.registry.transfer import Send, Transfer, disk_errors, report_until_done
from trio_ollama.store import Store, StoreError
from trio_ollama.store.manifest import Layer

# Each PATCH carries this much of the blob, in order (the protocol's chunked upload).
UPLOAD_CHUNK = 64 << 20
READ_SIZE = 1 << 20


async def push_model(store: Store, name: ModelName, insecure: bool, send: Send) -> None:
    # The store's disk failing (full, read-only) is this transfer's error, in Go's words.
    with disk_errors():
        await send.send({"status": "retrieving manifest"})
        try:
            found = await trio.to_thread.run_sync(store.resolve, name)
            manifest, raw, _ = await trio.to_thread.run_sync(store.read_manifest, found)
        except StoreError as exc:
            await send.send({"status": "couldn't retrieve manifest"})
            raise RegistryError(str(exc)) from exc
        layers = [*manifest.layers]
        if manifest.config.digest:
            layers.append(manifest.config)
        async with open_repository(name, insecure) as repo:
            for layer in layers:
                await upload_blob(repo, store, layer, send)
            await send.send({"status": "pushing manifest"})
            await repo.put_manifest(name.tag, raw, manifest.media_type)
        await send.send({"status": "success"})


async def upload_blob(repo: Repository, store: Store, layer: Layer, send: Send) -> None:
    if await repo.has_blob(layer.digest):
        await send.send(Transfer(layer.digest, layer.size, layer.size).status("pushing"))
        return
    path = store.blob_path(layer.digest)
    try:
        size = (await trio.to_thread.run_sync(path.stat)).st_size
    except FileNotFoundError:
        raise RegistryError(f'blob "{layer.digest}" not found') from None
    transfer = Transfer(layer.digest, size)
    with first_failure():  # the registry's error as itself, not inside the nursery's group
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report_until_done, transfer, "pushing", send)
            try:
                await _upload(repo, path, layer, transfer)
            finally:
                transfer.done.set()
    transfer.completed = size
    await send.send(transfer.status("pushing"))


def _mount_source(repo: Repository, layer: Layer) -> str:
    """The repository of the same registry this layer came from (`from`), to mount it."""
    source = parse_name(layer.from_) if layer.from_ else None
    if source is None or not source.is_valid or source.host.lower() != repo.name.host.lower():
        return ""
    path = f"{source.namespace}/{source.model}"
    return "" if path == f"{repo.name.namespace}/{repo.name.model}" else path


async def _upload(repo: Repository, path: Path, layer: Layer, transfer: Transfer) -> None:
    start = repo.url("blobs", "uploads/")
    source = _mount_source(repo, layer)
    if source:
        start += f"?mount={layer.digest}&from={source}"
    response = await repo.request("POST", start)
    if response.status_code == 201:
        transfer.completed = transfer.total  # mounted: nothing to send
        return
    location = _location(repo, response)
    offset = 0
    while offset < transfer.total:
        length = min(UPLOAD_CHUNK, transfer.total - offset)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + length - 1}",
            "Content-Length": str(length),
        }
        chunk_start = offset

        def body(at: int = chunk_start, n: int = length) -> AsyncGenerator[bytes, None]:
            transfer.completed = at  # a chunk sent again (after a 401) counts once
            # Opens the file at its first read; `Repository.stream` closes it when the
            # request ends, however it ends (httpx stops reading a body it cannot send).
            return _read(path, at, n, transfer)

        try:
            response = await repo.request("PATCH", location, headers, body)
        except RegistryError:
            transfer.completed = chunk_start
            raise
        location = _location(repo, response)
        offset += length
    url = str(httpx.URL(location).copy_merge_params({"digest": layer.digest}))
    await repo.request("PUT", url, {"Content-Length": "0"}, b"")


def _location(repo: Repository, response: httpx.Response) -> str:
    headers = response.headers
    location = headers.get("Docker-Upload-Location") or headers.get("Location")
    if not location:
        raise RegistryError("the registry did not say where to upload")
    return repo.absolute(str(location))


async def _read(
    path: Path, offset: int, length: int, transfer: Transfer
) -> AsyncGenerator[bytes, None]:
    fd = await trio.to_thread.run_sync(os.open, path, os.O_RDONLY)
    try:
        while length > 0:
            data = await trio.to_thread.run_sync(os.pread, fd, min(READ_SIZE, length), offset)
            if not data:
                raise RegistryError(f"blob {path.name} is shorter than its manifest says")
            offset += len(data)
            length -= len(data)
            transfer.completed += len(data)
            yield data
    finally:
        os.close(fd)
