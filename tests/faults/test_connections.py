"""Slow and idle clients at the served registry: a half-sent body is refused 408 and its
connection closed after the body timeout; an idle keep-alive connection is closed after the
keep-alive timeout; connections stalled mid-headers (which uvicorn does not time out: nginx's
client_header_timeout does, in the deployment) do not stop others being served."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.faults.conftest import BOUND_SECONDS, Caller, Registry, report

pytestmark = pytest.mark.fault


def _connect(registry: Registry) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", registry.port), timeout=BOUND_SECONDS)
    sock.settimeout(BOUND_SECONDS)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the timeout)."""
    received = b""
    for _ in range(1000):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_a_half_sent_body_is_refused_408_and_its_connection_closed(
    pg_registry: Registry,
) -> None:
    timeout = float(pg_registry.env["CONTACTPOINT_REQUEST_BODY_TIMEOUT_SECONDS"])
    with _connect(pg_registry) as sock:
        sock.sendall(
            b"POST /api/v1/children/search HTTP/1.1\r\nHost: registry\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"family_na'
        )
        began = time.monotonic()
        answer = _read_until_closed(sock)
        took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert timeout - 0.5 < took < timeout + 3
    report("half-sent-body", answered_and_closed_s=round(took, 2), timeout_s=timeout)


def test_an_idle_keep_alive_connection_is_closed(pg_registry: Registry) -> None:
    keep_alive = float(pg_registry.env["CONTACTPOINT_KEEP_ALIVE_SECONDS"])
    with _connect(pg_registry) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: registry\r\n\r\n")
        first = b""
        for _ in range(100):  # the whole answer, however it is split
            first += sock.recv(65536)
            if first.endswith(b'{"status":"ok"}'):
                break
        assert first.startswith(b"HTTP/1.1 200")
        began = time.monotonic()
        rest = _read_until_closed(sock)
        took = time.monotonic() - began
    assert rest == b""
    assert took < keep_alive + 3
    report("idle-keep-alive", closed_after_s=round(took, 2), keep_alive_s=keep_alive)


def test_clients_stalled_mid_headers_do_not_stop_others(
    pg_registry: Registry, caller: Caller
) -> None:
    stalled = []
    try:
        for _ in range(50):
            sock = _connect(pg_registry)
            sock.sendall(b"GET /api/v1/children/search HTTP/1.1\r\nHost: registry\r\nX-A: ")
            stalled.append(sock)
        time.sleep(1)
        view = caller.view()
        health = caller.probe("/healthz")
        assert view.status == 200
        assert health.status == 200
        # uvicorn holds them (no header timeout of its own): still open after the keep-alive.
        time.sleep(float(pg_registry.env["CONTACTPOINT_KEEP_ALIVE_SECONDS"]) + 1)
        stalled[0].setblocking(False)
        held = True
        with contextlib.suppress(BlockingIOError):
            held = stalled[0].recv(1) != b""
        report(
            "stalled-headers",
            connections=len(stalled),
            still_held_after_keep_alive=held,
            view_s=round(view.seconds, 3),
            healthz_s=round(health.seconds, 3),
        )
    finally:
        for sock in stalled:
            sock.close()
