"""`pull`: the manifest, then each blob not in the store, verified, then the manifest written
last, with Ollama's statuses (`server/images.go` `PullModel`)."""

from __future__ import annotations

import attrs
import trio

from trio_ollama.names import ModelName
from trio_ollama.registry.client import RegistryError, open_repository
from trio_ollama.registry.download import SAVE_EVERY, BlobDownload, DigestMismatch, Downloads
from trio_ollama.registry.transfer import Send, disk_errors
from trio_ollama.store import Store, StoreError
from trio_ollama.store.layout import InvalidDigestError, normalize_digest
from trio_ollama.store.manifest import Layer, Manifest, ManifestError


@attrs.frozen
class TransferOptions:
    """How many parts of a blob move at once, and the smallest part (`Settings`); how often a
    download's progress is saved."""

    streams: int = 4
    smallest_part: int = 100 * 1000 * 1000
    prune: bool = True
    save_every: float = SAVE_EVERY


def manifest_layers(raw: bytes) -> list[Layer]:
    """The blobs a registry's manifest names (config last, as Ollama), each digest checked:
    it becomes a file name in the store. The manifest is decoded as the store decodes its own
    (Go's types and texts, nesting bounded; `Repository.manifest` bounds its size); a size is
    checked against the disk when its download begins (`BlobDownload`)."""
    try:
        manifest = Manifest.from_bytes(raw)
        layers = [*manifest.layers, manifest.config]
        checked = [attrs.evolve(x, digest=normalize_digest(x.digest)) for x in layers]
    except (ManifestError, InvalidDigestError) as exc:
        # Ollama's text is Go's decoding error after the prefix; the store names the file.
        reason = str(exc).removeprefix("manifest: ")
        raise RegistryError(f"pull model manifest: {reason}") from None
    for layer in checked:
        if layer.size < 0:
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
    # The store's disk failing (full, read-only) is this transfer's error, in Go's words.
    with disk_errors():
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
                    options.streams, options.smallest_part, save_every=options.save_every,
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
