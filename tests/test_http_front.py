"""The HTTP front at the socket level, against the real `trio-ollama serve` (the shared one: any
store will do): half-closed requests, `Connection: close`, HTTP/1.0, and bounded garbage. After
each, the same server process answers as before. Shutting down takes servers of their own."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.server import ServerProcess
from trio_ollama.api.server import GRACE_SECONDS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(real_server: ServerProcess) -> ServerProcess:
    return real_server


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def exchange(server: ServerProcess, data: bytes, *, half_close: bool, wait: float = 5) -> bytes:
    """Send `data` (then shut the write side if `half_close`); read until the server closes or
    `wait` seconds pass."""
    with socket.create_connection(address(server), timeout=wait) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def still_serving(server: ServerProcess, pid: int) -> None:
    assert server.proc.poll() is None, "the server process died"
    assert server.proc.pid == pid
    r = httpx.get(server.url, timeout=5)
    assert (r.status_code, r.text) == (200, "Ollama is running")


# Routes that answer before reading a body that was declared but not (all) sent.
EARLY_ANSWERS = [
    b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc",
    b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999\r\n\r\n{",
    b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n{}",
    b"POST /api/chat HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 400\r\n\r\n{}",
]


def test_half_closed_requests_never_end_the_server(server: ServerProcess) -> None:
    # The upstream crash came 1 in 6 tries or so (docs/upstream-hypercorn.md): 25 rounds of all
    # four kinds give 100 chances.
    pid = server.proc.pid
    for _ in range(25):
        for request in EARLY_ANSWERS:
            answer = exchange(server, request, half_close=True, wait=2)
            # An answer, or a close: the request was cut short, so either is fair.
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
    still_serving(server, pid)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /api/tags HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ],
)
def test_connections_that_ask_to_close_are_closed(
    server: ServerProcess, request_bytes: bytes
) -> None:
    started = time.monotonic()
    answer = exchange(server, request_bytes, half_close=False, wait=10)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    assert time.monotonic() - started < 5, "the server kept the connection open"


def test_garbage_in_a_bounded_loop_leaves_the_server_serving(server: ServerProcess) -> None:
    """Random truncations of valid requests, random bytes and half-closes (150 connections)."""
    pid = server.proc.pid
    rng = random.Random(20261201)
    valid = [
        b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 30\r\n\r\n"
        b'{"model": "x", "prompt": "hi"}',
        b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}",
    ]
    for _ in range(150):
        kind = rng.randrange(3)
        base = rng.choice(valid)
        if kind == 0:
            data = base[: rng.randrange(1, len(base))]
        elif kind == 1:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        else:
            cut = rng.randrange(len(base))
            data = base[:cut] + bytes([rng.randrange(256)]) + base[cut + 1 :]
        exchange(server, data, half_close=rng.random() < 0.5, wait=0.2)
    still_serving(server, pid)


def test_a_kept_alive_connection_the_client_closes_is_closed_at_once(
    server: ServerProcess,
) -> None:
    """The client's end of an idle kept-alive connection (its EOF) ends it on the server's side
    too: the server closes at once, instead of holding the socket in CLOSE_WAIT until the
    keep-alive timeout (30 s). Seen here as the server's own EOF after the client's half-close,
    for a connection that served one request and for one that served two."""
    for requests in (1, 2):
        with socket.create_connection(address(server), timeout=10) as sock:
            for _ in range(requests):
                sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                answer = b""
                while not answer.endswith(b"}"):
                    answer += sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
            sock.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            assert sock.recv(65536) == b""
            assert time.monotonic() - started < 5, "closed by the keep-alive timeout only"


def test_an_idle_kept_alive_connection_does_not_hold_up_shutdown(tmp_path: Path) -> None:
    """As Ollama's server does, shutting down closes idle connections at once: only requests
    still in flight get the grace period."""
    server = ServerProcess(tmp_path / "models")
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}"):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" not in answer.lower()
        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started
        assert sock.recv(65536) == b"", "the server closed the idle connection"
    assert stopped_in < GRACE_SECONDS, f"the shutdown waited {stopped_in:.1f} s for it"


def test_a_second_signal_stops_the_server_at_once_and_quietly(tmp_path: Path) -> None:
    """SIGINT starts the graceful shutdown; while a request still holds it open, a second
    SIGINT ends the process at once, with no traceback."""
    server = ServerProcess(tmp_path / "models", stderr=subprocess.PIPE)
    proc = server.proc
    try:
        # A request whose body never finishes keeps the grace period going.
        with socket.create_connection(address(server)) as sock:
            sock.sendall(
                b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99\r\n\r\n{"
            )
            # Time for the server to read the headers: nothing it shows says it has.
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            # A second, in which a server with no request in flight would have ended.
            time.sleep(1.0)
            assert proc.poll() is None, "still in its grace period"
            proc.send_signal(signal.SIGINT)
            started = time.monotonic()
            code = proc.wait(timeout=10)
            stopped_in = time.monotonic() - started
    finally:
        proc.kill()
        _, stderr = proc.communicate()
    assert code == 0 and stopped_in < 3, (code, stopped_in)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "stopping now" in stderr
