"""The model-management verbs: list, ps, show, stop, rm, cp, pull, push (Ollama's `cmd/cmd.go`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from trio_ollama.cli.client import APIError, Client, CLIError
from trio_ollama.cli.formatting import table
from trio_ollama.cli.progress import Progress
from trio_ollama.cli.show import show_info
from trio_ollama.gocompat.format import human_bytes, human_time

SECTION_FLAGS = ("license", "modelfile", "parameters", "system", "template")
ONE_SECTION = (
    "only one of '--license', '--modelfile', '--parameters', '--system', or '--template' "
    "can be specified"
)


def parse_time(text: str | None) -> float | None:
    """An API timestamp as epoch seconds; Go's zero time (and absence) is None ("Never")."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.year <= 1:
        return None
    return moment.timestamp()


def list_models(client: Client, prefix: str | None) -> str:
    rows = []
    for m in client.json("GET", "/api/tags").get("models") or []:
        name = m.get("name", "")
        if prefix and not name.lower().startswith(prefix.lower()):
            continue
        size = "-" if m.get("remote_host") else human_bytes(int(m.get("size", 0)))
        modified = human_time(parse_time(m.get("modified_at")), "Never")
        rows.append([name, m.get("digest", "")[:12], size, modified])
    return table(["NAME", "ID", "SIZE", "MODIFIED"], rows)


def processor(size: int, vram: int) -> str:
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = round((size - vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def until(expires_at: str | None, now: float | None = None) -> str:
    moment = parse_time(expires_at)
    now = time.time() if now is None else now
    if moment is not None and moment < now:
        return "Stopping..."
    return human_time(moment, "Never", now=now)


def running_models(client: Client, prefix: str | None) -> str:
    """Ollama's `ps` table; with the queue columns (RUNNING, WAITING, SLOTS) when the server
    reports them (trio-ollama does; Ollama does not, and then the table is Ollama's)."""
    models = [
        m for m in client.json("GET", "/api/ps").get("models") or []
        # Case-sensitive, as Ollama's `ps`.
        if not prefix or m.get("name", "").startswith(prefix)
    ]  # fmt: skip
    queue = any("requests_running" in m for m in models)
    rows = []
    for m in models:
        size, vram = int(m.get("size", 0)), int(m.get("size_vram", 0))
        context = m.get("context_length")
        row = [
            m.get("name", ""),
            m.get("digest", "")[:12],
            human_bytes(size),
            processor(size, vram),
            str(context) if context else "",
        ]
        if queue:
            row += [str(m.get(k, "")) for k in ("requests_running", "requests_waiting")]
            row.append(str(m.get("num_parallel", "")))
        rows.append([*row, until(m.get("expires_at"))])
    headers = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT"]
    headers += ["RUNNING", "WAITING", "SLOTS"] if queue else []
    return table([*headers, "UNTIL"], rows)


def show(client: Client, model: str, sections: Mapping[str, bool], verbose: bool) -> str:
    chosen = [name for name in SECTION_FLAGS if sections.get(name)]
    if len(chosen) > 1:
        raise CLIError(ONE_SECTION)
    body: dict[str, Any] = {"model": model}
    if verbose:
        body["verbose"] = True
    resp = client.json("POST", "/api/show", body)
    if chosen:
        value = str(resp.get(chosen[0]) or "")
        # Ollama prints license, modelfile and parameters with Println; system and template raw.
        return value if chosen[0] in ("system", "template") else value + "\n"
    return show_info(resp, verbose)


def unload(client: Client, model: str) -> None:
    """`show` then a generate with no prompt and keep_alive 0, as Ollama's loadOrUnloadModel."""
    client.json("POST", "/api/show", {"model": model})
    for _ in client.stream("/api/generate", {"model": model, "keep_alive": 0}):
        pass


def stop(client: Client, model: str) -> None:
    try:
        unload(client, model)
    except APIError as exc:
        if "not found" in exc.message:
            raise CLIError(f'couldn\'t find model "{model}" to stop') from None
        raise


def remove(client: Client, models: list[str]) -> Iterator[str]:
    for model in models:
        try:
            unload(client, model)
        except APIError as exc:
            if "not found" not in exc.message.lower():
                print(f"Warning: unable to stop model '{model}'", file=sys.stderr)
        client.request("DELETE", "/api/delete", {"model": model})
        yield f"deleted '{model}'"


def copy(client: Client, source: str, destination: str) -> str:
    client.request("POST", "/api/copy", {"source": source, "destination": destination})
    return f"copied '{source}' to '{destination}'"


def follow(items: Iterator[dict[str, Any]], progress: Progress, verb: str) -> None:
    """Show a stream of `{"status", "digest", "total", "completed"}` as spinners and bars."""
    for item in items:
        digest, total = item.get("digest") or "", int(item.get("total") or 0)
        if digest and total:
            completed = int(item.get("completed") or 0)
            if verb == "pulling" and completed == 0:
                continue  # Ollama skips the announce-only line so no 0% bar flashes by
            name = digest.removeprefix("sha256:").strip()[:12]
            progress.bar(f"{verb} {name}:", completed, total)
        else:
            progress.status(str(item.get("status") or ""))


def transfer(client: Client, verb: str, model: str, insecure: bool) -> None:
    """pull or push, drawn as Ollama draws them: a bar per layer, a spinner per step."""
    body = {"model": model, "insecure": insecure} if insecure else {"model": model}
    with Progress() as progress:
        follow(client.stream(f"/api/{verb}", body), progress, f"{verb}ing")
