"""The OCI distribution protocol's HTTP side, over httpx on Trio: one repository's manifests,
blobs and uploads, with Ollama's error texts and the registry's auth challenges answered.

Auth: a 401 carries `WWW-Authenticate`. `Basic` is answered with the credentials `~/.netrc`
(or `$NETRC`) holds for the registry's host; `Bearer realm=...,service=...,scope=...` by asking
the realm for a token (with those credentials, if any) and retrying once, as Ollama's
`makeRequestWithRetry` does. A realm on another host (a separate token service) gets only
the credentials written for its own host, and only over https.
"""

from __future__ import annotations

import base64
import logging
import netrc
import os
import re
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, ClassVar

import attrs
import httpx
import trio

from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat.decode import STRING, go_field
from trio_ollama.gocompat.gojson import quote
from trio_ollama.names import ModelName
from trio_ollama.version import __version__

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
USER_AGENT = f"trio-ollama/{__version__}"
# Connecting is quick or hopeless; a read that stalls this long is a dead connection (Ollama
# calls a part that sends nothing for 30 s stalled and retries it).
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_MANIFEST = 4 << 20

# A body to send again after an auth challenge: bytes, or a factory of a fresh stream (which
# may hold a file open: each one is closed when its request ends, however it ends).
Body = bytes | Callable[[], AsyncGenerator[bytes, None]] | None


class RegistryError(Exception):
    """A pull or push that failed; the message is Ollama's text for the same failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(RegistryError):
    """A 404: Go's `os.ErrNotExist`, which is what Ollama reports."""

    def __init__(self) -> None:
        super().__init__("file does not exist")


class UnauthorizedError(RegistryError):
    def __init__(self) -> None:
        super().__init__("unauthorized: access denied")


class InsecureProtocolError(RegistryError):
    def __init__(self) -> None:
        super().__init__("insecure protocol http")


class TransportError(RegistryError):
    """The connection failed or was cut, or the server failed for now (5xx, 408, 429): worth
    another try, from where it stopped."""


# An error's body is for a message, a token service's for a token: a registry cannot make the
# server hold an endless one.
MAX_ERROR_BODY = 64 << 10


async def _bounded_body(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= MAX_ERROR_BODY:
            break
    return bytes(data[:MAX_ERROR_BODY])


def transport_error(exc: httpx.HTTPError, request: httpx.Request | None = None) -> RegistryError:
    """A failed exchange; with the `request` that could not be sent, named as Go's `url.Error`
    names it (`Get "https://host/v2/...": dial tcp: lookup host: no such host`), so that the
    user sees what was reached for."""
    reason = str(exc) or type(exc).__name__
    if request is not None:
        reason = f"{request.method.capitalize()} {quote(str(request.url))}: {_dial(exc, request)}"
    return TransportError(reason)


def _dial(exc: httpx.HTTPError, request: httpx.Request) -> str:
    """Why a connection could not be made, in Go's `net.OpError` words for the two failures a
    user meets (an unknown host, nothing listening); otherwise the exception's own text."""
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    address = f"[{url.host}]:{port}" if ":" in url.host else f"{url.host}:{port}"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            unknown = cause.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
            why = "no such host" if unknown else str(cause.strerror or cause).lower()
            return f"dial tcp: lookup {url.host}: {why}"
        if isinstance(cause, ConnectionRefusedError):
            return f"dial tcp {address}: connect: connection refused"
    return str(exc) or type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, what it was raised from, and the members of any group among them."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


def parse_url(text: str, base: httpx.URL | None = None) -> httpx.URL:
    """A URL made of a model's host or named by a registry (a token realm, an upload
    `Location`, relative to `base` if given): http or https with a host, or a `RegistryError`
    worded as Go's `url.Error` (`parse "http://[::1": missing ']' in host`)."""
    try:
        url = httpx.URL(text)
        if base is not None:
            url = base.join(url)
    except httpx.InvalidURL as exc:
        authority = text.partition("://")[2].partition("/")[0]
        reason = str(exc)
        if "[" in authority and "]" not in authority:
            reason = "missing ']' in host"  # httpx calls it an invalid port
        raise RegistryError(f"parse {quote(text)}: {reason[:1].lower()}{reason[1:]}") from None
    if url.scheme not in ("http", "https"):
        raise RegistryError(f"unsupported protocol scheme {quote(url.scheme)}")
    if not url.host:
        raise RegistryError(f"parse {quote(text)}: no host in request URL")
    return url


@attrs.frozen(kw_only=True)
class TokenResponse:
    """A token service's answer (Ollama's `api.TokenResponse`, and OAuth2's `access_token`)."""

    GO_NAME: ClassVar[str] = "api.TokenResponse"

    token: str = go_field(STRING, default="")
    access_token: str = go_field(STRING, default="")


# A token goes back in a header: visible ASCII only (RFC 6750's b64token is narrower still).
_TOKEN = re.compile(r"[\x21-\x7e]+")


def parse_token(body: bytes) -> str:
    """The bearer token in a token service's answer (already bounded by `_bounded_body`)."""
    try:
        go_type = go.struct_type(TokenResponse)
        data = go.decode_object(body, go_type)
        answer = go.build(TokenResponse, data, go_type.struct_name)
    except go.DecodeError as exc:
        raise RegistryError(f"the registry's token service answered: {exc}") from None
    token = answer.token or answer.access_token
    if not token:
        raise RegistryError("the registry's token service answered without a token")
    if not _TOKEN.fullmatch(token):
        raise RegistryError("the registry's token service answered with an invalid token")
    return token


def _closing(content: object) -> AbstractAsyncContextManager[object]:
    """Close a streamed body when its request ends: httpx stops reading a body it could not
    send, and an unclosed generator would hold its file until the garbage collector came."""
    return aclosing(content) if isinstance(content, AsyncGenerator) else nullcontext()


@attrs.frozen
class Challenge:
    """One `WWW-Authenticate` header: its scheme and parameters."""

    scheme: str
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)
        }
        return cls(scheme.lower(), params)


def read_netrc(host: str) -> tuple[str, str] | None:
    """The login and password `~/.netrc` (or `$NETRC`) gives `host` (`host:port` first)."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        entries = netrc.netrc(str(path))
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    for machine in (host, host.rsplit(":", 1)[0]):
        found = entries.authenticators(machine)
        if found is not None:
            login, _, password = found
            return login, password or ""
    return None


def basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


@attrs.define
class Repository:
    """One `host/namespace/model` on its registry: `https`, or `http` when `insecure`."""

    name: ModelName
    http: httpx.AsyncClient
    insecure: bool = False
    credentials: tuple[str, str] | None = None
    authorization: str = ""

    @property
    def base(self) -> str:
        return f"{'http' if self.insecure else 'https'}://{self.name.host}"

    @property
    def path(self) -> str:
        return f"/v2/{self.name.namespace}/{self.name.model}"

    def url(self, *parts: str) -> str:
        """A URL of this repository; a host no URL can hold (`127.0.0.1:5000:1`, a valid model
        name) is refused here, with the URL, at the first request."""
        url = "/".join([self.base + self.path, *parts])
        parse_url(url)
        return url

    def absolute(self, location: str) -> str:
        """A `Location` header, which may be relative to the registry."""
        return str(parse_url(location, base=httpx.URL(self.base)))

    def is_registry(self, url: str) -> bool:
        """Whether `url` is the registry itself (its scheme and host): only it gets the
        registry's credentials, never an upload or storage host a `Location` names."""
        target = httpx.URL(url)
        mine = httpx.URL(self.base)
        return (target.scheme, target.netloc) == (mine.scheme, mine.netloc)

    # ----- requests

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: Body = None
    ) -> httpx.Response:
        """One request whose answer's body is not used: read within a bound (so that the
        connection can serve the next request), then dropped. Errors mapped as
        `makeRequestWithRetry` maps them."""
        async with self.stream(method, url, headers, body) as response:
            await _bounded_body(response)
            return response

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: Body = None
    ) -> AsyncIterator[httpx.Response]:
        """A request whose answer is read by the caller; a 401 is answered once, then retried."""
        for attempt in range(2):
            content = body() if callable(body) else body
            async with _closing(content):
                request = self._build(method, url, headers, content)
                try:
                    response = await self.http.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise transport_error(exc, request) from exc
                try:
                    if response.status_code == 401:
                        challenge = response.headers.get("WWW-Authenticate", "")
                        await response.aclose()
                        if attempt == 0:
                            await self._authenticate(Challenge.parse(challenge), url)
                            continue
                        raise UnauthorizedError()
                    if response.status_code == 404:
                        raise NotFoundError()
                    if response.status_code >= 400:
                        text = (await _bounded_body(response)).decode(errors="replace")
                        error = f"{response.status_code}: {text}"
                        if response.status_code >= 500 or response.status_code in (408, 429):
                            raise TransportError(error)  # worth another try, as Ollama retries
                        raise RegistryError(error)
                    yield response
                    return
                except httpx.HTTPError as exc:
                    raise transport_error(exc) from exc
                finally:
                    await response.aclose()
        raise UnauthorizedError()  # pragma: no cover - the loop returns or raises

    def _build(
        self, method: str, url: str, headers: dict[str, str] | None, content: Any
    ) -> httpx.Request:
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.authorization and self.is_registry(url):
            all_headers["Authorization"] = self.authorization
        return self.http.build_request(method, url, headers=all_headers, content=content)

    async def _authenticate(self, challenge: Challenge, url: str) -> None:
        if not self.is_registry(url):
            raise UnauthorizedError()  # an upload or storage host asks: it gets nothing of ours
        if self.credentials is None:
            self.credentials = await trio.to_thread.run_sync(read_netrc, self.name.host)
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise UnauthorizedError()
            self.authorization = basic(self.credentials)
            return
        if challenge.scheme != "bearer" or not challenge.params.get("realm"):
            raise UnauthorizedError()
        realm = parse_url(challenge.params["realm"])
        realm_host = realm.netloc.decode()
        credentials = self.credentials
        if realm_host != self.name.host or (realm.scheme != "https" and not self.insecure):
            # A token service of its own (Docker Hub's, GitLab's): it gets the credentials
            # written for its host, and only over https, never the registry's.
            credentials = None
            if realm.scheme == "https":
                credentials = await trio.to_thread.run_sync(read_netrc, realm_host)
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("service", challenge.params.get("service", ""))
        ]
        params += [("scope", s) for s in challenge.params.get("scope", "").split(" ") if s]
        headers = {"User-Agent": USER_AGENT}
        if credentials is not None:
            headers["Authorization"] = basic(credentials)
        token = self.http.build_request("GET", realm.copy_merge_params(params), headers=headers)
        try:
            response = await self.http.send(token, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, token) from exc
        try:
            body = await _bounded_body(response)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        finally:
            await response.aclose()
        if response.status_code >= 400:
            # As Ollama words it, an empty body too ("401: ").
            raise RegistryError(f"{response.status_code}: {body.decode(errors='replace')}")
        self.authorization = f"Bearer {parse_token(body)}"

    # ----- the protocol

    async def manifest(self, tag: str) -> bytes:
        """The manifest's bytes as sent (they are what its digest is of), within a bound: a
        registry cannot make the server hold an endless answer in memory."""
        data = bytearray()
        url = self.url("manifests", tag)
        async with self.stream("GET", url, {"Accept": MANIFEST_ACCEPT}) as response:
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_MANIFEST:
                    raise RegistryError(f"manifest is larger than {MAX_MANIFEST} bytes")
        return bytes(data)

    async def put_manifest(self, tag: str, raw: bytes, media_type: str) -> None:
        await self.request("PUT", self.url("manifests", tag), {"Content-Type": media_type}, raw)

    async def has_blob(self, digest: str) -> bool:
        try:
            await self.request("HEAD", self.url("blobs", digest))
        except NotFoundError:
            return False
        return True

    def blob_url(self, digest: str) -> str:
        return self.url("blobs", digest)


@asynccontextmanager
async def open_repository(name: ModelName, insecure: bool) -> AsyncIterator[Repository]:
    # Redirects: a registry may send blobs from a storage host; httpx drops the Authorization
    # header when a redirect leaves the registry's origin.
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True) as http:
        yield Repository(name, http, insecure)
