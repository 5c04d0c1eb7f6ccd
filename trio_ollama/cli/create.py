"""`create MODEL -f Modelfile`: upload the Modelfile's local files as blobs, then `/api/create`.

The Modelfile is parsed here, on the client, as Ollama does: the server only ever sees digests
of files it already holds, so a server on another machine can build from local GGUFs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trio_ollama.cli.client import Client, CLIError
from trio_ollama.cli.commands import follow
from trio_ollama.cli.progress import Progress
from trio_ollama.options import OptionError
from trio_ollama.store.layout import digest_file
from trio_ollama.store.modelfile import (
    Command,
    CreateRequest,
    ModelfileError,
    parse_modelfile,
    to_create_request,
)

DEFAULT_FILE = "Modelfile"
HASH_CHUNK = 1 << 20


def read_modelfile(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise CLIError(f"open {path}: {reason}") from None
    # Ollama accepts UTF-16 files that carry a byte-order mark.
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: {exc}") from None


def load_commands(file: str | None) -> tuple[list[Command], Path]:
    """The Modelfile's commands and the folder its relative paths are taken from."""
    path = Path(file or DEFAULT_FILE).absolute()
    if file is None and not path.exists():
        # Ollama's `create` without a Modelfile imports the current folder.
        return [Command("model", ".")], Path.cwd()
    try:
        return parse_modelfile(read_modelfile(path)), path.parent
    except ModelfileError as exc:
        raise CLIError(str(exc)) from None


def request_body(model: str, req: CreateRequest, quantize: str) -> dict[str, Any]:
    """The JSON form of `/api/create`; unset fields are left out so the base model's stay."""
    body: dict[str, Any] = {"model": model}
    if req.from_:
        body["from"] = req.from_
    if req.files:
        body["files"] = req.files
    if req.adapters:
        body["adapters"] = req.adapters
    if req.template is not None:
        body["template"] = req.template
    if req.system is not None:
        body["system"] = req.system
    if req.license:
        body["license"] = list(req.license)
    if req.parameters:
        body["parameters"] = req.parameters
    if req.messages is not None:
        body["messages"] = [m.go_json() for m in req.messages]
    if quantize:
        body["quantize"] = quantize
    return body


def create(client: Client, model: str, file: str | None, quantize: str = "") -> None:
    commands, folder = load_commands(file)
    try:
        # A dry run with no hashing: a bad PARAMETER is reported before any upload starts.
        to_create_request(commands, folder, lambda path: "")
    except (ModelfileError, OptionError) as exc:
        raise CLIError(str(exc)) from None
    with Progress() as progress:
        progress.status("gathering model components")

        def upload(path: Path) -> str:
            if not path.is_file():
                raise CLIError(f"open {path}: no such file or directory")
            digest = digest_file(path)
            label = f"copying file {digest}"
            if client.blob_exists(digest):
                size = path.stat().st_size
                progress.bar(label, size, size)
            else:
                client.upload_blob(
                    digest, path, lambda sent, total: progress.bar(label, sent, total)
                )
            return digest

        req = to_create_request(commands, folder, upload)
        body = request_body(model, req, quantize)
        follow(client.stream("/api/create", body), progress, "pulling")
