"""Pull throughput on loopback: `trio-ollama pull` of the default model (98 MB) from a real
registry (`docker-registry`, started here on 127.0.0.1) against a plain single-stream download
of the same blob (one GET written to a file; and the same with the sha256 and the fsync that a
pull cannot skip).

    python -m benchmarks.registry_pull [--rounds 3] [--part-size BYTES ...] [--streams N]

Each pull starts from an empty store (the model is deleted in between), and includes the
manifest, the parts, the sha256 check and the publishing of the blob. Figures are medians.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.registry import running_registry
from tests.server import running_server
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import fetch_default_gguf

MB = 1e6


def plain_download(url: str, target: Path, safe: bool) -> float:
    """One GET into a file; `safe` adds what a pull cannot skip: the sha256 and an fsync."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=60) as response, target.open("wb") as f:
        response.raise_for_status()
        for chunk in response.iter_raw(1 << 20):
            f.write(chunk)
            if safe:
                digest.update(chunk)
        if safe:
            f.flush()
            os.fsync(f.fileno())
    return time.perf_counter() - started


def timed_pull(url: str, name: str) -> float:
    started = time.perf_counter()
    response = httpx.post(
        url + "/api/pull", json={"model": name, "insecure": True, "stream": False}, timeout=300
    )
    elapsed = time.perf_counter() - started
    assert response.json() == {"status": "success"}, response.text
    httpx.request("DELETE", url + "/api/delete", json={"model": name}).raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument(
        "--part-size", type=int, nargs="+", default=[100_000_000, 8 << 20],
        help="smallest part, bytes (100 MB is Ollama's: the 98 MB model comes in one part)",
    )  # fmt: skip
    args = parser.parse_args()
    gguf = fetch_default_gguf()
    size = gguf.stat().st_size
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with running_registry(tmp / "registry") as registry:
            source = Store(tmp / "source")
            digest = source.import_file(gguf)
            name = f"{registry.host}/bench/smollm2:135m"
            source.create(name, CreateRequest(files={"model.gguf": digest}))
            with running_server(tmp / "source") as url:
                pushed = httpx.post(
                    url + "/api/push", json={"model": name, "insecure": True, "stream": False},
                    timeout=300,
                )  # fmt: skip
                assert pushed.json() == {"status": "success"}, pushed.text

            blob_url = f"{registry.url}/v2/bench/smollm2/blobs/{digest}"
            rows: list[tuple[str, list[float]]] = []
            for safe in (False, True):
                times = [plain_download(blob_url, tmp / "plain", safe) for _ in range(args.rounds)]
                rows.append((f"plain GET, 1 stream{' + sha256 + fsync' if safe else ''}", times))
            for part in args.part_size:
                env = {
                    "TRIO_OLLAMA_TRANSFER_PART_SIZE": str(part),
                    "OLLAMA_MAX_TRANSFER_STREAMS": str(args.streams),
                }
                parts = -(-size // max(part, size // 16))
                with running_server(tmp / f"pull-{part}", env) as url:
                    times = [timed_pull(url, name) for _ in range(args.rounds)]
                streams = min(parts, args.streams)
                rows.append((f"trio-ollama pull, {parts} parts, {streams} at once", times))

    print(f"blob: {size / MB:.1f} MB, {args.rounds} rounds, median")
    for label, times in rows:
        median = statistics.median(times)
        print(f"{label:<40} {median:7.3f} s {size / MB / median:8.1f} MB/s")


if __name__ == "__main__":
    main()
