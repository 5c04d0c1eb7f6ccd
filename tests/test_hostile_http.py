"""Issue 29's resource cases against the real server and the real model: what a client does by
the hundred (models copied, shown and deleted; connections opened and closed) leaves the server's
`/metrics` and its open descriptors where they were. The server process and its runner are the
same before and after."""

from __future__ import annotations

import os
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import poll_until
from tests.server import ServerProcess

pytestmark = pytest.mark.slow

MODEL = "smollm2:135m"
ROUNDS = 300


@pytest.fixture(scope="module")
def server(real_server: ServerProcess) -> ServerProcess:
    # A runner loaded, so that its process is checked too, and its series are there.
    httpx.post(real_server.url + "/api/generate", json={"model": MODEL}, timeout=60)
    return real_server


def series(page: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (s.name, s.labels)
        for family in text_string_to_metric_families(page)
        for s in family.samples
    ]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_models_copied_shown_and_deleted_leave_no_series(server: ServerProcess) -> None:
    """Each shown model had its own request series; a deleted one takes them along. A name a
    client made up (a 404) never gets any."""
    pid, runners = server.proc.pid, server.runners()
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def one_round(i: int) -> None:
            name = f"hostile-copy-{i}"
            r = client.post("/api/copy", json={"source": MODEL, "destination": name})
            assert r.status_code == 200, r.text
            r = client.post("/api/show", json={"model": name})
            assert r.status_code == 200, r.text
            r = client.request("DELETE", "/api/delete", json={"model": name})
            assert r.status_code == 200, r.text
            r = client.post("/api/show", json={"model": f"made-up-{i}"})
            assert (r.status_code, r.json()) == (404, {"error": f"model 'made-up-{i}' not found"})
            r = client.post("/api/generate", json={"model": f"made-up-{i}", "prompt": "hi"})
            assert r.status_code == 404, r.text

        # Once first, so that every route of the loop (and /metrics) has its series already.
        one_round(-1)
        client.get("/metrics")
        before = client.get("/metrics").text
        for i in range(ROUNDS):
            one_round(i)
        after = client.get("/metrics").text
    found = series(after)
    assert len(found) - len(series(before)) <= 2, "series were added"
    assert len(after) - len(before) < 2_000, "the page grew"
    models = {labels.get("model", "") for _, labels in found}
    assert {m for m in models if m.startswith(("hostile-copy-", "made-up-"))} == set()

    # The loop's requests were counted all the same, under no model (the server is shared:
    # counted from the page before the loop).
    def shown(page: str) -> list[float]:
        return [
            s.value
            for family in text_string_to_metric_families(page)
            for s in family.samples
            if s.name == "trio_ollama_requests_total"
            and s.labels == {"model": "", "endpoint": "/api/show", "status": "404"}
        ]

    [counted_before] = shown(before)
    assert shown(after) == [counted_before + ROUNDS]
    assert server.proc.poll() is None and server.proc.pid == pid
    assert server.runners() == runners, "the runner died or was replaced"


def test_connections_the_client_closes_are_closed_at_once(server: ServerProcess) -> None:
    """A client that opens a connection, asks once and closes it, 300 times: each connection
    is closed on the server's side too, not kept (CLOSE_WAIT) until its keep-alive runs out.
    Three ways to leave: after reading the answer (the connection idle, kept alive), after
    a half-close, and before the answer."""
    pid, runners = server.proc.pid, server.runners()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    request = b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    httpx.get(server.url + "/api/version", timeout=10)  # the route warmed up
    start = open_fds(pid)
    for i in range(ROUNDS):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            if i % 10 == 9:
                continue  # gone before the answer
            answer = b""
            while not answer.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" not in answer.lower()
            if i % 10 == 8:
                sock.shutdown(socket.SHUT_WR)
    poll_until(
        lambda: open_fds(pid) <= start + 3,
        1.0,
        f"descriptors left open (of {start} before)",
        every=0.02,
    )
    assert server.proc.poll() is None and server.proc.pid == pid
    assert server.runners() == runners, "the runner died or was replaced"
    r = httpx.get(server.url + "/api/version", timeout=10)
    assert r.status_code == 200
