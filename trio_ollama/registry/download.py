"""Blob downloads: ranged parts fetched in parallel into one partial file, resumable after a
cut connection (the part goes on from its last byte) or a restart (the parts' progress is kept
beside the file), and one download per blob however many pulls want it.

The partial file and its progress live in the blobs folder under the store's temporary prefix
(`sha256-partial-download-<hex>` and `.json`), so start-up pruning removes stale ones (after the
store's grace period) and a reader of the store never mistakes them for blobs. The progress file
is only ever a lower bound: the bytes it counts were written (and fsynced) before it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import trio

from trio_ollama.concurrency import unwrap_single
from trio_ollama.gocompat.format import human_bytes
from trio_ollama.registry.client import RegistryError, Repository, TransportError
from trio_ollama.registry.transfer import Send, Transfer, report_until_done
from trio_ollama.store import DigestMismatchError, Store
from trio_ollama.store.layout import TEMP_PREFIX

log = logging.getLogger(__name__)

# Ollama's download.go: up to 16 parts per blob, each 100 MB to 1000 MB.
NUM_PARTS = 16
MAX_PART_SIZE = 1000 * 1000 * 1000
MAX_RETRIES = 6
WRITE_SIZE = 1 << 20
# How often, by default, the parts' progress is saved (data fsynced, then the record): a crash
# costs what arrived since; saving more often costs throughput (each save is an fsync).
# `BlobDownload.save_every` (`TransferOptions.save_every`) sets it for one download.
SAVE_EVERY = 1.0


def part_size(total: int, smallest: int) -> int:
    return max(min(total // NUM_PARTS, MAX_PART_SIZE), smallest, 1)


def free_space(folder: Path) -> int:
    """The bytes still free for this process on `folder`'s file system (`folder` may not
    exist yet: the nearest folder above it that does)."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
    return 0


class DigestMismatch(RegistryError):
    """A downloaded blob is not what its digest says: discarded."""


def digest_mismatch(exc: DigestMismatchError) -> DigestMismatch:
    return DigestMismatch(
        f"digest mismatch, file must be downloaded again: want {exc.expected}, got {exc.actual}"
    )


@attrs.define
class PartialState:
    """What is on disk of one download: bytes written at the start of each part."""

    total: int
    part_size: int
    completed: list[int]

    @classmethod
    def fresh(cls, total: int, size: int) -> PartialState:
        return cls(total, size, [0] * (-(-total // size)))

    def bounds(self, index: int) -> tuple[int, int]:
        start = index * self.part_size
        return start, min(start + self.part_size, self.total)

    def to_bytes(self) -> bytes:
        data = {"total": self.total, "part_size": self.part_size, "completed": self.completed}
        return json.dumps(data).encode()

    @classmethod
    def load(cls, raw: bytes, total: int, size: int) -> PartialState | None:
        """The saved progress, if it is for this blob's size and parts and makes sense."""
        try:
            data = json.loads(raw)
            state = cls(int(data["total"]), int(data["part_size"]), list(data["completed"]))
        except (ValueError, KeyError, TypeError):
            return None
        if (state.total, state.part_size) != (total, size):
            return None
        if len(state.completed) != len(cls.fresh(total, size).completed):
            return None
        for index, done in enumerate(state.completed):
            start, end = state.bounds(index)
            if not isinstance(done, int) or not 0 <= done <= end - start:
                return None
        return state

    @property
    def written(self) -> int:
        return sum(self.completed)


@contextlib.contextmanager
def first_failure() -> Iterator[None]:
    """A download's parts fail together (one registry, one disk): their first failure is the
    pull's answer, as itself, not inside the nurseries' exception groups, so that callers'
    `except RegistryError` and `except OSError` see it."""
    try:
        with unwrap_single():
            yield
    except BaseExceptionGroup as group:
        failures = group.subgroup(lambda e: isinstance(e, RegistryError | OSError))
        if failures is None:
            raise
        first: BaseException = failures
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from first.__cause__


@attrs.define
class Downloads:
    """The blob downloads in flight in this server, by digest (Ollama's blobDownloadManager)."""

    active: dict[str, Transfer] = attrs.field(factory=dict)

    @contextlib.contextmanager
    def claim(self, digest: str, total: int) -> Iterator[Transfer]:
        """This task downloads `digest`; others wait for it until the claim ends."""
        transfer = Transfer(digest, total)
        self.active[digest] = transfer
        try:
            yield transfer
        except RegistryError as exc:
            transfer.failure = exc
            raise
        finally:
            del self.active[digest]
            transfer.done.set()


@attrs.define
class _Prefix:
    """The sha256 of the file's first `upto` bytes, fed as they are written (the part at the
    front streams in order), so that the check at the end reads only the rest."""

    h: hashlib._Hash = attrs.field(factory=hashlib.sha256)
    upto: int = 0
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def wrote(self, data: bytes, offset: int) -> None:
        """Called from the writing thread, after the bytes are in the file."""
        with self.lock:
            if offset == self.upto:
                self.h.update(data)
                self.upto += len(data)


@attrs.define
class BlobDownload:
    """One blob of one pull, from the registry into the store."""

    repo: Repository
    store: Store
    downloads: Downloads
    digest: str
    total: int
    streams: int
    smallest_part: int
    prefix: _Prefix = attrs.field(factory=_Prefix)
    save_every: float = SAVE_EVERY  # seconds between saves of the parts' progress

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    @property
    def partial(self) -> Path:
        return self.store.layout.blobs / f"{TEMP_PREFIX}download-{self.hex}"

    @property
    def progress_file(self) -> Path:
        return self.partial.with_name(self.partial.name + ".json")

    # ----- the whole of it

    async def run(self, send: Send) -> None:
        """Bring the blob into the store: here already, fetched by another pull (which this one
        waits for), or fetched, verified and published by this one. The claim, and the lock on
        the partial file, end with this blob: a pull never holds one blob while it waits for
        another (two pulls wanting the same blobs in other orders would wait for each other)."""
        while True:
            if await trio.to_thread.run_sync(self.store.has_blob, self.digest):
                await self._here(send)
                return
            other = self.downloads.active.get(self.digest)
            if other is None:
                break
            await report_until_done(other, "pulling", send)
            if other.failure is not None:
                raise other.failure
            # Cancelled (its client left): if the blob is not in, this pull takes over.
        with self.downloads.claim(self.digest, self.total) as transfer:
            await trio.to_thread.run_sync(self._check_space)
            fd = await self._lock_partial()
            if fd is None:
                await self._here(send)
                return
            try:
                if await trio.to_thread.run_sync(self.store.has_blob, self.digest):
                    # Published by another process between the check above and the lock.
                    await trio.to_thread.run_sync(self._discard)
                    await self._here(send)
                    return
                with first_failure():
                    async with trio.open_nursery() as nursery:
                        # The ticker reports until the parts are in; then the last status.
                        nursery.start_soon(report_until_done, transfer, "pulling", send)
                        await self._fetch(fd, transfer)
                        nursery.cancel_scope.cancel()
                await send.send(transfer.status("pulling"))
                await self.verify()
            finally:
                os.close(fd)

    async def _here(self, send: Send) -> None:
        size = (await trio.to_thread.run_sync(self.store.blob_path(self.digest).stat)).st_size
        await send.send(Transfer(self.digest, size, size).status("pulling"))

    async def verify(self) -> None:
        """Hash the finished file; publish it as the blob, or discard it on a mismatch."""
        try:
            prefix = (self.prefix.h, self.prefix.upto)
            await trio.to_thread.run_sync(self.store.adopt_blob, self.partial, self.digest, prefix)
        except DigestMismatchError as exc:
            await trio.to_thread.run_sync(self._discard)
            raise digest_mismatch(exc) from None
        await trio.to_thread.run_sync(lambda: self.progress_file.unlink(missing_ok=True))

    def _discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.progress_file.unlink(missing_ok=True)

    # ----- the partial file

    def _check_space(self) -> None:
        """The registry's claim of the blob's size sizes the partial file: refused, before the
        file exists, when the disk cannot hold it (rather than a full disk hours later, or a
        claim of an exabyte taken at its word)."""
        try:
            have = os.stat(self.partial).st_blocks * 512  # written by an earlier try
        except FileNotFoundError:
            have = 0
        needed = self.total - have
        free = free_space(self.store.layout.blobs)
        if needed > free:
            raise RegistryError(
                f"pulling {self.hex[:12]} requires more disk space ({human_bytes(needed)}) "
                f"than is available ({human_bytes(free)})"
            )

    async def _lock_partial(self) -> int | None:
        """The partial file, open and locked against other processes sharing the store (held
        until the blob is published or the pull ends); None if the blob arrived meanwhile."""
        while True:
            fd = await trio.to_thread.run_sync(self._open)
            try:
                # Cancellable: an abandoned thread's lock goes when its file is closed.
                await trio.to_thread.run_sync(
                    fcntl.flock, fd, fcntl.LOCK_EX, abandon_on_cancel=True
                )
                current = await trio.to_thread.run_sync(self._is_the_partial, fd)
            except BaseException:
                os.close(fd)
                raise
            if current:
                return fd
            # The holder published the file (or discarded it) while this one waited.
            os.close(fd)
            if await trio.to_thread.run_sync(self.store.has_blob, self.digest):
                return None

    def _is_the_partial(self, fd: int) -> bool:
        try:
            path = os.stat(self.partial)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (path.st_dev, path.st_ino) == (mine.st_dev, mine.st_ino)

    # ----- the parts

    async def _fetch(self, fd: int, transfer: Transfer) -> None:
        size = part_size(self.total, self.smallest_part)
        state = await trio.to_thread.run_sync(self._load, fd, size)
        transfer.completed = state.written
        if state.written:
            log.info(
                "resuming a download",
                extra={"digest": self.digest, "have": state.written, "total": self.total},
            )
        saver = _Saver(self, fd, state)
        limit = trio.CapacityLimiter(self.streams)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(saver.every_while)
                async with trio.open_nursery() as parts:
                    for index in range(len(state.completed)):
                        parts.start_soon(self._part, index, state, fd, transfer, limit)
                nursery.cancel_scope.cancel()
        finally:
            # However it ended (done, failed, cancelled), the next try starts from here.
            with trio.CancelScope(shield=True):
                await saver.save()

    def _write(self, fd: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        at = offset
        while view:
            written = os.pwrite(fd, view, at)
            view, at = view[written:], at + written
        self.prefix.wrote(data, offset)

    def _open(self) -> int:
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)

    def _load(self, fd: int, size: int) -> PartialState:
        state = None
        if os.fstat(fd).st_size == self.total:
            with contextlib.suppress(OSError):
                state = PartialState.load(self.progress_file.read_bytes(), self.total, size)
        if state is None:
            os.ftruncate(fd, self.total)
            state = PartialState.fresh(self.total, size)
        return state

    async def _part(
        self,
        index: int,
        state: PartialState,
        fd: int,
        transfer: Transfer,
        limit: trio.CapacityLimiter,
    ) -> None:
        start, end = state.bounds(index)
        tries = 0
        async with limit:
            while start + state.completed[index] < end:
                before = state.completed[index]
                try:
                    await self._stream_part(index, state, fd, transfer)
                except TransportError as exc:
                    # Tries count cuts in a row: a flaky link that makes progress goes on.
                    tries = 1 if state.completed[index] > before else tries + 1
                    if tries >= MAX_RETRIES:
                        raise RegistryError(f"max retries exceeded: {exc.message}") from exc
                    log.info("part %d of %s failed, retrying: %s", index, self.digest[7:19], exc)
                    await trio.sleep(min(0.25 * 2**tries, 8.0))

    async def _stream_part(
        self, index: int, state: PartialState, fd: int, transfer: Transfer
    ) -> None:
        start, end = state.bounds(index)
        offset = start + state.completed[index]
        # Identity: the byte offsets are of the blob itself, never of a compressed copy of it.
        headers = {"Range": f"bytes={offset}-{end - 1}", "Accept-Encoding": "identity"}
        buffer = bytearray()

        async def flush() -> None:
            nonlocal offset
            if not buffer:
                return
            data = bytes(buffer)
            buffer.clear()
            await trio.to_thread.run_sync(self._write, fd, data, offset)
            offset += len(data)
            state.completed[index] += len(data)
            transfer.completed += len(data)

        async with self.repo.stream("GET", self.repo.blob_url(self.digest), headers) as resp:
            whole = resp.status_code == 200 and offset == 0 and end == self.total
            if resp.status_code != 206 and not whole:
                raise RegistryError(f"unexpected status code {resp.status_code}")
            sent = resp.headers.get("Content-Range", "")
            if resp.status_code == 206 and not sent.startswith(f"bytes {offset}-"):
                raise RegistryError(f"asked for bytes {offset}-{end - 1}, got {sent!r}")
            try:
                async for chunk in resp.aiter_bytes():
                    buffer += chunk[: end - offset - len(buffer)]
                    if len(buffer) >= WRITE_SIZE:
                        await flush()
                    if offset + len(buffer) >= end:
                        break
            except Exception:
                # Keep what arrived before the cut: the retry (or the next pull) starts there.
                with trio.CancelScope(shield=True):
                    await flush()
                raise
            await flush()
        if offset < end:
            raise TransportError(f"the registry ended part {index} early")


@attrs.define
class _Saver:
    """Saves the parts' progress every `save_every` seconds while they run (and once at the
    end): the data fsynced first, then the record, so the record never counts a byte the disk
    lacks."""

    download: BlobDownload
    fd: int
    state: PartialState
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    saved: list[int] = attrs.field(factory=list)

    async def every_while(self) -> None:
        while True:
            await trio.sleep(self.download.save_every)
            if self.state.completed != self.saved:
                await self.save()

    async def save(self) -> None:
        async with self.lock:
            self.saved = list(self.state.completed)
            record = self.state.to_bytes()  # taken now: a lower bound of what is written
            layout = self.download.store.layout
            target = self.download.progress_file

            def write() -> None:
                os.fsync(self.fd)
                layout.write_bytes(target, record)

            await trio.to_thread.run_sync(write)
