"""The CLI's HTTP client: one `httpx.Client` to the server, with errors mapped to `CLIError`.

Every verb but `serve` and `setup` goes through here, so a server that is not running, a
`{"error": ...}` body and an error line in the middle of a stream all surface the same way:
as a `CLIError` whose text the entry point prints on one line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

log = logging.getLogger(__name__)

# Loading a model or generating a long answer may take minutes; only connecting is bounded.
TIMEOUT = httpx.Timeout(None, connect=10.0)
UPLOAD_CHUNK = 1 << 20


class CLIError(Exception):
    """A failure the CLI reports as one line on stderr and exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def line(self) -> str:
        return f"Error: {self.message}"


class ServerUnreachable(CLIError):
    def __init__(self, url: str) -> None:
        super().__init__(
            f"could not connect to trio-ollama server at {url}; start it with: trio-ollama serve"
        )

    def line(self) -> str:
        return self.message


class APIError(CLIError):
    """The server answered with an error status or an in-stream `{"error": ...}` line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_message(response: httpx.Response) -> str:
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return text.strip() or f"{response.status_code} {response.reason_phrase}"


class Client:
    """Synchronous client of the native API; the CLI is a plain process, not a Trio program."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ServerUnreachable(self.base_url) from None
        except httpx.HTTPError as exc:
            raise CLIError(f"{method} {path}: {exc or type(exc).__name__}") from None
        log.debug("%s %s -> %s", method, path, response.status_code)
        return response

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Send a JSON body (if any); raise `APIError` for a 4xx/5xx answer."""
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise APIError(response.status_code, _error_message(response))
        return response

    def json(self, method: str, path: str, body: Any = None) -> Any:
        response = self.request(method, path, body)
        return response.json() if response.content else {}

    def stream(self, path: str, body: Any) -> Generator[dict[str, Any], None, None]:
        """POST and yield each NDJSON object; an `{"error": ...}` line raises `APIError`.

        Leaving the iteration early (a `break`, Ctrl+C) closes the response, which is how the
        server learns to stop generating.
        """
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise APIError(response.status_code, _error_message(response))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError:
                        raise CLIError(f"POST {path}: not a JSON line: {line[:200]!r}") from None
                    if isinstance(item, dict) and "error" in item:
                        raise APIError(500, str(item["error"]))
                    yield item
        except httpx.ConnectError:
            raise ServerUnreachable(self.base_url) from None
        except httpx.HTTPError as exc:
            raise CLIError(f"POST {path}: {exc or type(exc).__name__}") from None

    def blob_exists(self, digest: str) -> bool:
        response = self._send("HEAD", f"/api/blobs/{digest}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise APIError(response.status_code, _error_message(response))
        return True

    def upload_blob(
        self, digest: str, path: Path, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Stream a file to `POST /api/blobs/<digest>`; `progress(sent, total)` after each chunk."""
        total = path.stat().st_size

        def chunks(f: BinaryIO) -> Iterator[bytes]:
            sent = 0
            while chunk := f.read(UPLOAD_CHUNK):
                sent += len(chunk)
                yield chunk
                if progress is not None:
                    progress(sent, total)

        with path.open("rb") as f:
            # Declared up front: a generator body would otherwise be sent chunked.
            headers = {"Content-Length": str(total)}
            url = f"/api/blobs/{digest}"
            response = self._send("POST", url, content=chunks(f), headers=headers)
        if response.status_code >= 400:
            raise APIError(response.status_code, _error_message(response))
