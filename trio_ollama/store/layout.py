"""Ollama's on-disk layout: `blobs/sha256-<hex>` and `manifests/<host>/<ns>/<model>/<tag>`.

Every write goes to a temporary file in `blobs/` (a name Ollama's own pruning also removes),
is fsynced, then renamed into place, so a reader never sees half a file and a crash leaves at most
a temporary file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trio_ollama.names import ModelName

DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")
TEMP_PREFIX = "sha256-partial-"
CHUNK = 1 << 20


class InvalidDigestError(ValueError):
    def __init__(self) -> None:
        super().__init__("invalid digest format")


def normalize_digest(digest: str) -> str:
    """`sha256:<hex>` or `sha256-<hex>` → `sha256:<lowercase hex>`."""
    match = DIGEST_RE.match(digest)
    if not match:
        raise InvalidDigestError()
    return "sha256:" + match.group(1).lower()


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(directory: Path) -> Iterator[tuple[int, Path]]:
    """An open temporary file in `directory`, removed unless the caller renamed it away."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    path = Path(name)
    try:
        yield fd, path
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def publish(fd: int, tmp: Path, target: Path, mode: int = 0o644) -> None:
    """fsync, chmod and atomically rename a finished temporary file to `target`."""
    os.fsync(fd)
    os.fchmod(fd, mode)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    fsync_dir(target.parent)


class Layout:
    """Paths under one models directory; knows nothing about manifests' contents."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"

    def blob_path(self, digest: str) -> Path:
        return self.blobs / normalize_digest(digest).replace(":", "-")

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests.joinpath(*name.relative_path.parts)

    def inside(self, path: Path) -> bool:
        """Whether `path`'s folder, links resolved, is still inside `manifests/`: a linked folder
        must not carry a read or a write out of the store."""
        root = os.path.realpath(self.manifests)
        return os.path.commonpath([root, os.path.realpath(path.parent)]) == root

    def write_bytes(self, target: Path, data: bytes) -> None:
        with temp_file(self.blobs) as (fd, tmp):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            publish(fd, tmp, target)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise manifest changes and pruning between processes sharing this store."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".trio-ollama.lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def iter_manifest_paths(self) -> Iterator[Path]:
        """Every file at exactly `manifests/*/*/*/*`, as Ollama globs them."""
        if not self.manifests.is_dir():
            return
        yield from (p for p in sorted(self.manifests.glob("*/*/*/*")) if p.is_file())
