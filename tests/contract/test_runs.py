"""Every answer of real runs conforms to the published document (the long stage).

The security suite runs against a served reference registry with a recorder among the target's
observers; a short real load run goes through a recording proxy. Each exchange is then checked
against the document the registry serves, with openapi-core (``security_tests.contract``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.cli import reference_settings
from security_tests import engine, local
from security_tests.cli import default_source
from security_tests.contract import Contract, Recorder, check
from security_tests.target import API, Target

pytestmark = pytest.mark.long

# Headers that belong to one hop of a connection, not to the exchange.
HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})
LENIENT_SLO = """
min_samples: 5
objectives:
  - endpoint: "*"
    p99_ms: 60000
    error_rate: 1.0
rate:
  achieved_ratio_min: 0.1
"""


def _document(url: str, target: Target) -> dict[str, Any]:
    """The registry's own document, fetched as a logged-in persona."""
    with httpx.Client(base_url=url) as client:
        token = target.token(client, target.accounts[0])
        response = client.get(f"{API}/openapi.json", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def _contract(document: dict[str, Any]) -> Contract:
    return Contract(document, undocumented=[f"{API}/openapi.json"])


def test_every_answer_the_security_suite_gets_conforms_to_the_document(
    attack_template: Path, tmp_path: Path
) -> None:
    recorder = Recorder()
    with local.serve(attack_template, tmp_path / "registry") as registry:
        target = Target.open(
            registry.url,
            registry.personas,
            database_url=registry.database_url,
            source_dir=default_source(),
        )
        document = _document(registry.url, target)
        target.observers.append(recorder)
        # The static group checks the document itself (schemathesis) or makes no request.
        scenarios = [sc for sc in engine.select() if sc.group != "static"]
        results = engine.run(target, scenarios)
    verdict = check(_contract(document), recorder.exchanges)
    print(f"\nsecurity suite ({len(results)} scenarios): {verdict.summary()}")
    assert verdict.checked > 1000
    assert len(verdict.operations) > 30
    assert verdict.violations == []


class _Recording(BaseHTTPRequestHandler):
    """Forward each request to the registry and record the exchange."""

    protocol_version = "HTTP/1.1"
    server: _Proxy

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP]
        response = self.server.upstream.request(
            self.command, self.path, headers=headers, content=body
        )
        self.server.recorder(response)
        self.send_response(response.status_code)
        for key, value in response.headers.multi_items():
            if key.lower() not in HOP:
                self.send_header(key, value)
        self.send_header("content-length", str(len(response.content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.content)

    # http.server dispatches to do_<METHOD>.
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, recorder: Recorder) -> None:
        super().__init__(("127.0.0.1", 0), _Recording)
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.recorder = recorder


@contextmanager
def recording_proxy(upstream: str, recorder: Recorder) -> Iterator[str]:
    proxy = _Proxy(upstream, recorder)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()
        proxy.upstream.close()


def test_every_answer_of_a_short_load_run_conforms_to_the_document(
    load_template: Path, tmp_path: Path
) -> None:
    recorder = Recorder()
    slo = tmp_path / "slo.yaml"
    slo.write_text(LENIENT_SLO)
    with local.serve(
        load_template, tmp_path / "registry", settings=reference_settings(time.time())
    ) as registry:
        target = Target.open(registry.url, registry.personas)
        document = _document(registry.url, target)
        with recording_proxy(registry.url, recorder) as url:
            result = subprocess.run(
                [
                    sys.executable, "-m", "contactpoint.cli", "load",
                    "--target", url, "--personas", str(load_template / "load-personas.json"),
                    "--profile", "steady", "--rate", "1", "--think-scale", "0.2",
                    "--duration", "20", "--adversaries", "2",
                    "--slo", str(slo), "--out", str(tmp_path / "out"),
                ],
                capture_output=True, text=True, timeout=240, check=False,
            )  # fmt: skip
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    verdict = check(_contract(document), recorder.exchanges)
    print(f"\nload run: {verdict.summary()}")
    assert verdict.checked > 50
    assert {"POST /api/v1/children/search", "GET /api/v1/children/{child_id}"} <= set(
        verdict.operations
    )
    assert verdict.violations == []
