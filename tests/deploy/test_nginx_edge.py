"""The deployment's edge: Debian's nginx with the nginx role's `contactpoint.conf.j2` in front of a
served registry answers what it refuses itself in the API's error envelope, with the API's
security headers, and passes the registry's own answers through."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jinja2
import pytest

from security_tests import local

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "deploy" / "ansible" / "roles" / "nginx" / "templates" / "contactpoint.conf.j2"
SECURITY_HEADERS = ("x-content-type-options", "content-security-policy", "cache-control")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        reason = "no nginx binary (apt-get install nginx-light)"
        if os.environ.get("CONTACTPOINT_REQUIRE_NGINX"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _start(tmp: Path, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = _nginx()
    port = _free_port()
    site = jinja2.Template(TEMPLATE.read_text()).render(
        nginx_listen=f"127.0.0.1:{port}",
        nginx_upstream=upstream,
        nginx_client_header_timeout="2s",
        nginx_client_body_timeout="2s",
    )
    (tmp / "site.conf").write_text(site)
    (tmp / "temp").mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{ access_log off; client_body_temp_path {tmp}/temp; proxy_temp_path {tmp}/temp; "
        f"fastcgi_temp_path {tmp}/temp; uwsgi_temp_path {tmp}/temp; scgi_temp_path {tmp}/temp; "
        f"include {tmp}/site.conf; }}\n"
    )
    with (tmp / "stderr.log").open("wb") as sink:
        process = subprocess.Popen(
            [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, base
        if process.poll() is not None:
            pytest.fail("nginx did not start: " + (tmp / "stderr.log").read_text())
        time.sleep(0.1)
    process.kill()
    pytest.fail("nginx did not start in 15 s")


@pytest.fixture(scope="module")
def edge(attack_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local.serve(attack_template, tmp_path_factory.mktemp("edge-registry")) as registry:
        upstream = registry.url.removeprefix("http://")
        process, base = _start(tmp_path_factory.mktemp("nginx"), upstream)
        try:
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


def _raw(base: str, payload: bytes, wait: float = 5.0) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def _envelope(answer: bytes, status: int, code: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split(" ")[1] == str(status), answer[:300]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    assert headers["content-type"].startswith("application/json")
    for name in SECURITY_HEADERS:
        assert name in headers, f"{name} missing from the {status}"
    assert f'"code": "{code}"' in body.decode(), body
    assert '"request_id": "' in body.decode()
    assert "nginx/" not in answer.decode("latin-1").lower()  # no version told


def test_the_registrys_own_answers_pass_through(edge: str) -> None:
    ready = httpx.get(f"{edge}/healthz")
    assert ready.status_code == 200
    refused = httpx.get(f"{edge}/api/v1/auth/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"]
    for name in SECURITY_HEADERS:
        assert name in refused.headers


def test_a_malformed_request_line_gets_the_envelope(edge: str) -> None:
    _envelope(_raw(edge, b"GARBAGE\r\n\r\n"), 400, "bad_request")


def test_a_malformed_header_gets_the_envelope(edge: str) -> None:
    _envelope(
        _raw(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"), 400, "bad_request"
    )


def test_headers_too_large_get_the_envelope(edge: str) -> None:
    big = b"X-Big: " + b"a" * 20000 + b"\r\n"
    _envelope(
        _raw(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n"),
        431,
        "headers_too_large",
    )


def test_a_request_line_too_long_gets_the_envelope(edge: str) -> None:
    path = b"/" + b"a" * 20000
    _envelope(_raw(edge, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"), 414, "uri_too_long")


def test_a_body_over_the_limit_gets_the_envelope(edge: str) -> None:
    body = b"{" + b" " * 70000 + b"}"
    request = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    _envelope(_raw(edge, request), 413, "payload_too_large")


def test_a_client_that_stops_sending_headers_is_cut_off(edge: str) -> None:
    began = time.monotonic()
    answer = _raw(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", wait=10.0)
    assert time.monotonic() - began < 8  # the 2 s header timeout, not the client's patience
    assert b"200 OK" not in answer


def test_a_registry_that_is_down_is_a_503_with_retry_after(tmp_path: Path) -> None:
    process, base = _start(tmp_path, f"127.0.0.1:{_free_port()}")
    try:
        answer = _raw(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        process.terminate()
        process.wait(timeout=10)
    _envelope(answer, 503, "dependency_unavailable")
    assert b"Retry-After: 5" in answer


def test_a_body_that_stops_arriving_is_cut_off(edge: str) -> None:
    request = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username": '
    )
    began = time.monotonic()
    answer = _raw(edge, request, wait=10.0)
    # nginx logs a 408 and closes the connection: nothing reaches the registry.
    assert time.monotonic() - began < 8
    assert answer == b""
