"""`pull`: the manifest, then each blob not in the store, verified, then the manifest written
last, with Ollama's statuses (`server/images.go` `PullModel`)."""

from __future__ import annotations

import attrs
import trio

from trio_ollama.names import ModelName
from trio_ollama.registry.client import RegistryError, open_repository
from trio_ollama.registry.download import BlobDownload, DigestMismatch, Downloads
from trio_ollama.registry.transfer import Send
from trio_ollama.store import Store, StoreError
from trio_ollama.store.layout import InvalidDigestError, normalize_digest
from trio_ollama.store.manifest import Layer, Manifest, ManifestError

# A layer's size sizes a file before its first byte comes: no registry gets to ask for more.
MAX_BLOB_SIZE = 1 << 42


@attrs.frozen
class TransferOptions:
    """How many parts of a blob move at once, and the smallest part (`Settings`)."""

    streams: int = 4
    smallest_part: int = 100 * 1000 * 1000
    prune: bool = True


def manifest_layers(raw: bytes) -> list[Layer]:
    """The blobs a registry's manifest names (config last, as Ollama), each digest checked:
    it becomes a file name in the store."""
    try:
        manifest = Manifest.from_bytes(raw)
        layers = [*manifest.layers]
        if manifest.config.digest:
            layers.append(manifest.config)
        checked = [attrs.evolve(x, digest=normalize_digest(x.digest)) for x in layers]
    except (ManifestError, InvalidDigestError) as exc:
        raise RegistryError(f"pull model manifest: {exc}") from None
    for layer in checked:
        if not 0 <= layer.size <= MAX_BLOB_SIZE:
            raise RegistryError(f"pull model manifest: layer {layer.digest} has size {layer.size}")
    return checked


async def pull_model(
    store: Store,
    downloads: Downloads,
    name: ModelName,
    insecure: bool,
    options: TransferOptions,
    send: Send,
) -> None:
    await send.send({"status": "pulling manifest"})
    async with open_repository(name, insecure) as repo:
        try:
            raw = await repo.manifest(name.tag)
        except RegistryError as exc:
            raise RegistryError(f"pull model manifest: {exc.message}") from None
        layers = manifest_layers(raw)
        seen: set[str] = set()
        for layer in layers:
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            blob = BlobDownload(
                repo, store, downloads, layer.digest, layer.size,
                options.streams, options.smallest_part,
            )  # fmt: skip
            # Each blob is verified and published as it arrives (`BlobDownload.run`), so that
            # no pull holds a blob while it waits for another; Ollama's statuses stay in order.
            try:
                await blob.run(send)
            except DigestMismatch:
                await send.send({"status": "verifying sha256 digest"})
                raise
        await send.send({"status": "verifying sha256 digest"})
    await send.send({"status": "writing manifest"})
    try:
        pruned = await trio.to_thread.run_sync(
            store.write_pulled_manifest, name, raw, options.prune
        )
    except StoreError as exc:
        raise RegistryError(str(exc)) from exc
    if pruned:
        await send.send({"status": "removing unused layers"})
    await send.send({"status": "success"})
