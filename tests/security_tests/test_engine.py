"""How the engine judges a scenario whose target throttled the harness's own address.

A target refusing the harness's one address its requests a minute (429 ``source_rate_limited``)
has not shown that a control failed: a scenario failing then is an error (it still fails the
run), never a finding. Any other refusal leaves a failure a failure. Real HTTP, on loopback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from security_tests import engine
from security_tests.context import Context
from security_tests.engine import Scenario, Severity, Status, expect
from security_tests.target import Target

CODES = {"/throttled": "source_rate_limited", "/refused": "rate_limited"}


class _Refusing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = CODES.get(self.path)
        body = json.dumps({"error": {"code": code, "message": "wait"}} if code else {}).encode()
        self.send_response(429 if code else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Target(url=f"http://127.0.0.1:{server.server_port}", accounts=[], timeout=5.0)
    server.shutdown()
    server.server_close()


def _scenario(path: str, *, fails: bool) -> Scenario:
    def func(ctx: Context) -> None:
        response = ctx.http.get(path)
        expect(not fails, f"GET {path} answered {response.status_code}")

    return Scenario(
        id=f"test.{path.strip('/')}-{fails}",
        title="a probe",
        owasp=(),
        asvs=(),
        severity=Severity.HIGH,
        func=func,
    )


def test_a_failure_while_the_harness_is_throttled_is_an_error(target: Target) -> None:
    result = engine.run_one(target, _scenario("/throttled", fails=True))
    assert result.status is Status.ERROR
    assert result.message.startswith(engine.THROTTLED_MESSAGE)
    assert result.message.endswith("GET /throttled answered 429")
    assert engine.failing([result], Severity.LOW) == [result]


def test_a_failure_after_another_refusal_stays_a_finding(target: Target) -> None:
    result = engine.run_one(target, _scenario("/refused", fails=True))
    assert (result.status, result.message) == (Status.FAILED, "GET /refused answered 429")


def test_a_pass_while_throttled_stays_a_pass(target: Target) -> None:
    assert engine.run_one(target, _scenario("/throttled", fails=False)).status is Status.PASSED
    assert engine.run_one(target, _scenario("/fine", fails=True)).status is Status.FAILED
