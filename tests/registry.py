"""A real OCI registry (Debian's `docker-registry`, the CNCF distribution registry) on a free
loopback port with a temporary config and storage, and two loopback proxies to put in front of
it: one that counts bytes and cuts connections, one that asks for Basic or Bearer auth."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import poll_until
from tests.server import free_port

BINARY = "docker-registry"
INSTALL = "apt-get install docker-registry"


def registry_binary() -> str:
    """The registry's path; absent, the test is skipped, except under CI, where it fails."""
    found = shutil.which(BINARY)
    if found is not None:
        return found
    message = f"{BINARY} is not installed ({INSTALL}): the registry tests cannot run"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message + "; CI must install it (.ci/run does)")
    pytest.skip(message)


CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: trio-ollama-tests
"""


class Registry:
    """`docker-registry serve` on 127.0.0.1; `host` is what model names use."""

    def __init__(self, folder: Path) -> None:
        self.storage = folder / "storage"
        self.storage.mkdir(parents=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        config = folder / "config.yml"
        config.write_text(CONFIG.format(root=self.storage, port=self.port))
        self.log = (folder / "registry.log").open("wb")
        self.proc = subprocess.Popen(
            [registry_binary(), "serve", str(config)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        failed = f"the registry did not start; see {folder / 'registry.log'}"

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(failed)
            try:
                return httpx.get(self.url + "/v2/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            poll_until(answers, 20, failed)
        except BaseException:
            self.stop()
            raise

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (its filesystem driver's layout)."""
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def running_registry(folder: Path) -> Iterator[Registry]:
    registry = Registry(folder)
    try:
        yield registry
    finally:
        registry.stop()


class CuttingProxy:
    """A TCP proxy on loopback that counts the bytes it passes each way and, when armed,
    cuts every connection once that count reaches `cut_at` (then lets new ones through), or
    holds every answer still from `stall_at` on until `release()` (`stalled` is set meanwhile)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.downstream_bytes = 0
        self.upstream_bytes = 0
        self.cut_at: int | None = None
        self.stall_at: int | None = None
        self.flowing = threading.Event()
        self.flowing.set()
        self.stalled = threading.Event()  # `stall_at` reached: nothing more flows downstream
        self.cuts = 0
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.closing = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def arm(self, cut_at: int | None = None, stall_at: int | None = None) -> None:
        """Count from zero; cut (or stall) once the count reaches the mark."""
        with self.lock:
            self.downstream_bytes = self.upstream_bytes = 0
            self.cut_at = cut_at
            self.stall_at = stall_at

    def release(self) -> None:
        self.stall_at = None
        self.stalled.clear()
        self.flowing.set()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if downstream:
                    self.flowing.wait()
                # Counted before it is sent: bytes half-sent when a cut lands are counted too.
                cut = downstream and self._count(len(data))
                if not downstream:
                    with self.lock:
                        self.upstream_bytes += len(data)
                target.sendall(data)
                if cut:
                    self._cut_all()
                    return
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    def _count(self, n: int) -> bool:
        with self.lock:
            self.downstream_bytes += n
            if self.stall_at is not None and self.downstream_bytes >= self.stall_at:
                self.flowing.clear()
                self.stalled.set()
            if self.cut_at is not None and self.downstream_bytes >= self.cut_at:
                self.cut_at = None
                self.cuts += 1
                return True
            return False

    def _cut_all(self) -> None:
        with self.lock:
            doomed, self.sockets = self.sockets, set()
        for s in doomed:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closing = True
        self.flowing.set()
        self.listener.close()
        self._cut_all()


class _Threads(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class AuthProxy:
    """An HTTP proxy on loopback that admits only authenticated requests to the registry:
    `basic` wants `user:secret`; `bearer` answers with a challenge whose realm (on this proxy)
    hands a token to `user:secret`, and then wants that token."""

    TOKEN = "token-for-trio-ollama"

    def __init__(self, upstream: str, scheme: str, realm_host: str = "") -> None:
        self.upstream = upstream
        self.scheme = scheme
        self.realm_host = realm_host  # a token service elsewhere, else this proxy
        self.seen_auth: list[str] = []
        self.token_requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization", "")
                proxy.seen_auth.append(auth)
                good_basic = "Basic " + base64.b64encode(b"user:secret").decode()
                if self.path.startswith("/token"):
                    proxy.token_requests.append(self.path)
                    if auth != good_basic:
                        return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {})
                    payload = json.dumps({"token": proxy.TOKEN}).encode()
                    return self._send(200, payload, {"Content-Type": "application/json"})
                wanted = good_basic if proxy.scheme == "basic" else f"Bearer {proxy.TOKEN}"
                if auth != wanted:
                    host = proxy.realm_host or self.headers.get("Host", "")
                    challenge = (
                        'Basic realm="registry"' if proxy.scheme == "basic" else
                        f'Bearer realm="http://{host}/token",service="registry",'
                        f'scope="repository:test/model:pull,push"'
                    )  # fmt: skip
                    return self._send(401, b"{}", {"WWW-Authenticate": challenge})
                headers = dict(self.headers.items())
                response = httpx.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                passed = {
                    k: v for k, v in response.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }  # fmt: skip
                self._send(response.status_code, response.content, passed)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle

        self.server = _Threads(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HostileRegistry:
    """A registry on loopback that answers what a test sets, for what no real registry sends:
    `manifest` (the bytes of every manifest), `challenge` (a `WWW-Authenticate` sent with a 401
    to every request while set), `location` (where an upload goes). Blobs are never there (HEAD
    and GET say 404); a PATCH is refused with a 413 after its first bytes, the connection then
    closed under a client still sending. `requests` lists `(method, path)` as they came."""

    def __init__(self) -> None:
        self.manifest = b"{}"
        self.challenge = ""
        self.location = "/v2/uploads/1"
        self.requests: list[tuple[str, str]] = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                registry.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if self.command == "PATCH":
                    self.rfile.read(min(length, 1024))
                    self.close_connection = True
                    return self._send(413, b"too large", {"Connection": "close"})
                if length:
                    self.rfile.read(length)
                if registry.challenge:
                    return self._send(401, b"{}", {"WWW-Authenticate": registry.challenge})
                if self.command == "GET" and "/manifests/" in self.path:
                    content_type = "application/vnd.docker.distribution.manifest.v2+json"
                    return self._send(200, registry.manifest, {"Content-Type": content_type})
                if self.command == "POST" and "/blobs/uploads/" in self.path:
                    return self._send(202, b"", {"Location": registry.location})
                if self.command == "PUT":
                    return self._send(201, b"", {})
                self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', {})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle

        self.server = _Threads(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def hostile_registry() -> Iterator[HostileRegistry]:
    registry = HostileRegistry()
    try:
        yield registry
    finally:
        registry.close()
