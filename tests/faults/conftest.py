"""Fault tests: the registry served over real HTTP (uvicorn in a subprocess) on its own
throwaway PostgreSQL cluster and Redis server, which the tests stop, freeze and restart.

Every wait here is bounded in time and every loop in count. Figures the tests measure are
printed (`-s`, or the junit output) for docs/faults.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, create_engine, text

from security_tests import local
from security_tests.target import Account, Target
from tests.fixtures.postgres import ThrowawayCluster, local_bindir
from tests.fixtures.postgres import required as postgres_required
from tests.fixtures.redis import ThrowawayRedis, local_binary

# Short bounds, so a stalled store turns into 503s within a few seconds of test time.
FAULT_SETTINGS = {
    "CONTACTPOINT_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    "CONTACTPOINT_DATABASE_STATEMENT_TIMEOUT_SECONDS": "3",
    "CONTACTPOINT_DATABASE_POOL_TIMEOUT_SECONDS": "2",
    "CONTACTPOINT_ADMISSION_WAIT_SECONDS": "2",
    "CONTACTPOINT_REQUEST_DEADLINE_SECONDS": "4",
    "CONTACTPOINT_REQUEST_BODY_TIMEOUT_SECONDS": "3",
    "CONTACTPOINT_LIMITS_REDIS_TIMEOUT_SECONDS": "0.5",
    "CONTACTPOINT_SHUTDOWN_GRACE_SECONDS": "3",
    "CONTACTPOINT_KEEP_ALIVE_SECONDS": "2",
    "CONTACTPOINT_LIMITS_SCALE": "100",
    # The per-source allowance is lifted by local.SMALL_REGISTRY: every test's traffic comes
    # from 127.0.0.1 into one session-long Redis, and 1,200 a minute (not scaled) would carry
    # one test's burst into the next.
    "CONTACTPOINT_DATABASE_POOL_SIZE": "4",
    "CONTACTPOINT_TOKEN_TTL_SECONDS": "3600",
    # One practitioner views hundreds of children here: the detector runs, but suspends no one.
    "CONTACTPOINT_SNOOPING_ALERT_SCORE": "100000000",
    "CONTACTPOINT_SNOOPING_SUSPEND_SCORE": "100000000",
}
# Every answer a dependency fault may give: never a 500, never a hang.
BOUND_SECONDS = 10.0
API = "/api/v1"


def _fail_or_skip(reason: str, require: bool) -> None:
    if require:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[ThrowawayCluster]:
    """A PostgreSQL cluster of the tests' own (never the machine's shared server)."""
    bindir = local_bindir()
    if bindir is None:
        _fail_or_skip("no PostgreSQL server binaries (initdb, pg_ctl)", postgres_required())
    assert bindir is not None
    cluster = ThrowawayCluster(bindir)
    try:
        cluster.start()
    except Exception as exc:
        cluster.stop()
        _fail_or_skip(f"could not start a throwaway PostgreSQL cluster: {exc}", True)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ThrowawayRedis]:
    binary = local_binary()
    if binary is None:
        _fail_or_skip("no redis-server binary", os.environ.get("CONTACTPOINT_REQUIRE_REDIS") == "1")
    assert binary is not None
    server = ThrowawayRedis(binary)
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: ThrowawayCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys, schema and a small population in the cluster, and the personas to use it."""
    data_dir = tmp_path_factory.mktemp("faults") / "template"
    data_dir.mkdir()
    url = f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/postgres"
    env = {**local._base_env(data_dir), "CONTACTPOINT_DATABASE_URL": url}
    local._cli(["keys", "generate", "--out", str(data_dir / "keys.json")], env)
    local._cli(["db", "upgrade", "--database", url], env)
    local._cli(
        [
            "generate",
            *("--children", "400", "--database", url, "--data-dir", str(data_dir)),
            *("--personas-per-role", "2", "--workers", "1", "--sample-per-la", "3"),
            *("--keys", str(data_dir / "keys.json")),
        ],
        env,
    )
    (data_dir / "database_url").write_text(url)
    return data_dir


@dataclass
class Registry:
    """`contactpoint serve` in a subprocess, which a test may stop, kill and start again."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=local.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reference_app.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        local._wait_ready(self.url, self.process, self.log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> float:
        """SIGTERM; seconds until the process ended (killed after 60 s)."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - began

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate()


@dataclass
class Outcome:
    """One request's answer: status, stable code, seconds taken, request id, Retry-After."""

    status: int
    code: str | None
    seconds: float
    request_id: str | None
    retry_after: str | None
    at: float = 0.0  # time.monotonic() when the answer came


_TOKENS: dict[str, dict[str, str]] = {}
_STEPS: dict[str, dict[str, int]] = {}


class Caller:
    """A practitioner at the registry: views and searches, each answer timed."""

    def __init__(
        self, registry: Registry, role: str = "social_care_practitioner", nth: int = 0
    ) -> None:
        self.registry = registry
        self.target = Target.open(registry.url, registry.data_dir / "personas.json")
        self.account: Account = [a for a in self.target.accounts if a.role == role][nth]
        self.http = httpx.Client(base_url=registry.url, timeout=30)
        self.children = [row["child_id"] for row in self.target.sample]
        # One login per persona a session: a second in the same 30 s would replay its one-time
        # code (refused), and waiting for the next costs more than the test.
        # Keyed by the registry's keys and database: registries share usernames.
        keys = hashlib.sha256(Path(registry.env["CONTACTPOINT_KEYS_FILE"]).read_bytes())
        database = registry.env["CONTACTPOINT_DATABASE_URL"]
        self.target._tokens = _TOKENS.setdefault(f"{keys.hexdigest()} {database}", {})
        self.target._steps = _STEPS.setdefault(keys.hexdigest(), {})
        try:
            self.token = self.target.token(self.http, self.account)
        except BaseException:
            self.http.close()
            raise

    def request(self, method: str, path: str, **kwargs: Any) -> Outcome:
        began = time.monotonic()
        response = self.http.request(method, path, **kwargs)
        seconds = time.monotonic() - began
        code = None
        if response.status_code >= 400:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = response.text[:60]
        return Outcome(
            response.status_code,
            code,
            seconds,
            response.headers.get("x-request-id"),
            response.headers.get("retry-after"),
            time.monotonic(),
        )

    def view(self, n: int = 0) -> Outcome:
        child = self.children[n % len(self.children)]
        headers = {"Authorization": f"Bearer {self.token}", "X-Access-Reason": "safeguarding"}
        return self.request("GET", f"{API}/children/{child}", headers=headers)

    def search(self, n: int = 0) -> Outcome:
        row = self.target.sample[n % len(self.target.sample)]
        body = {"family_name": row["family_name"], "date_of_birth": row["date_of_birth"]}
        headers = {"Authorization": f"Bearer {self.token}", "X-Access-Reason": "safeguarding"}
        return self.request("POST", f"{API}/children/search", json=body, headers=headers)

    def probe(self, path: str) -> Outcome:
        return self.request("GET", path)

    def burst(self, count: int, threads: int = 8, *, searches: bool = False) -> list[Outcome]:
        """``count`` views (and as many searches) from ``threads`` at once."""
        with ThreadPoolExecutor(threads) as pool:
            views = list(pool.map(self.view, range(count)))
            found = list(pool.map(self.search, range(count))) if searches else []
        return views + found

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def caller(pg_registry: Registry) -> Iterator[Caller]:
    """A social-care practitioner logged in to ``pg_registry``."""
    who = Caller(pg_registry)
    yield who
    who.close()


def assert_refused(outcomes: list[Outcome]) -> None:
    """Every answer a 503 ``dependency_unavailable`` with a Retry-After, within the bound."""
    for outcome in outcomes:
        assert (outcome.status, outcome.code) == (503, "dependency_unavailable"), outcome
        assert outcome.retry_after is not None
        assert int(outcome.retry_after) >= 1
        assert outcome.seconds < BOUND_SECONDS, outcome


def assert_alive_not_ready(caller: Caller) -> tuple[Outcome, Outcome]:
    """/readyz says not ready (503 ``not_ready``) while /healthz answers 200 within a second."""
    ready = caller.probe("/readyz")
    assert ready.status == 503
    assert ready.code == "not_ready"
    assert ready.seconds < BOUND_SECONDS
    health = caller.probe("/healthz")
    assert health.status == 200
    assert health.seconds < 1.0
    return ready, health


def logged(registry: Registry, marker: str) -> tuple[int, int]:
    """Lines of the server's log with ``marker``, and how many of them carry a traceback."""
    lines = registry.log.read_text(errors="replace").splitlines()
    hits = [i for i, line in enumerate(lines) if marker in line]
    traced = [i for i in hits if i + 1 < len(lines) and lines[i + 1].startswith("Traceback")]
    return len(hits), len(traced)


def wait_until(check: Any, *, within: float, every: float = 0.25) -> float:
    """Seconds until ``check()`` is true (fails the test past ``within``)."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if check():
            return time.monotonic() - began
        time.sleep(every)
    pytest.fail(f"not true within {within} s: {getattr(check, '__doc__', check)}")


def audited_request_ids(database_url: str, request_ids: list[str]) -> set[str]:
    """Which of ``request_ids`` have an audit event."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    found: set[str] = set()
    try:
        with engine.connect() as conn:
            for start in range(0, len(request_ids), 500):
                chunk = request_ids[start : start + 500]
                query = text(
                    "SELECT DISTINCT request_id FROM audit_events WHERE request_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True))
                rows = conn.execute(query, {"ids": chunk})
                found.update(str(row[0]) for row in rows)
    finally:
        engine.dispose()
    return found


def fault_env(data_dir: Path, database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {**local._base_env(data_dir), **local.SMALL_REGISTRY, **FAULT_SETTINGS}
    env["CONTACTPOINT_DATABASE_URL"] = database_url
    if redis_url:
        env["CONTACTPOINT_LIMITS_STORE"] = "redis"
        env["CONTACTPOINT_LIMITS_REDIS_URL"] = redis_url
    return env


@pytest.fixture
def pg_registry(
    pg_template: Path, redis_server: ThrowawayRedis, tmp_path: Path
) -> Iterator[Registry]:
    """The registry on the throwaway cluster, its limits in the throwaway Redis."""
    for name in ("keys.json", "personas.json", "children_sample.jsonl"):
        (tmp_path / name).write_bytes((pg_template / name).read_bytes())
    database_url = (pg_template / "database_url").read_text()
    registry = Registry(tmp_path, fault_env(tmp_path, database_url, redis_server.url))
    registry.start()
    yield registry
    registry.stop()


def report(name: str, **figures: object) -> None:
    """Print a test's measured figures (for docs/faults.md), one JSON line."""
    print(f"\nFAULT-FIGURES {name} {json.dumps(figures)}")
