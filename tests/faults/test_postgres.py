"""The registry's PostgreSQL stopped, stalled (SIGSTOP), slow (a lock held past the statement
timeout) and restarted under load, and the registry itself killed mid-burst: every answer is a
200 or a 503 within the bound, ``/healthz`` stays quick, ``/readyz`` names the database while it
is away, service returns without a restart, and every acknowledged view or search has its audit
event."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from tests.faults.conftest import (
    BOUND_SECONDS,
    Caller,
    Outcome,
    Registry,
    assert_alive_not_ready,
    assert_refused,
    audited_request_ids,
    logged,
    report,
    wait_until,
)
from tests.fixtures.postgres import ThrowawayCluster

pytestmark = pytest.mark.fault

BUSY = {"dependency_unavailable", "service_busy"}


def _ready(caller: Caller) -> bool:
    """/readyz says ready"""
    return caller.probe("/readyz").status == 200


def _served(caller: Caller) -> bool:
    """a view is served"""
    return caller.view().status == 200


def _all_acknowledged_audited(registry: Registry, outcomes: list[Outcome]) -> int:
    """Assert every 200 has its audit event; how many there were."""
    acknowledged = [o.request_id for o in outcomes if o.status == 200 and o.request_id]
    database_url = registry.env["CONTACTPOINT_DATABASE_URL"]
    missing = set(acknowledged) - audited_request_ids(database_url, acknowledged)
    assert not missing, f"{len(missing)} acknowledged requests without their audit event"
    return len(acknowledged)


def test_database_stopped_refuses_then_heals(
    pg_registry: Registry, caller: Caller, pg_cluster: ThrowawayCluster
) -> None:
    before = [caller.view(n) for n in range(3)]
    assert {o.status for o in before} == {200}
    pg_cluster.halt()
    try:
        views = [caller.view(n) for n in range(6)]
        assert_refused(views)
        ready, health = assert_alive_not_ready(caller)
        lines, traces = logged(pg_registry, "database unavailable")
        assert lines >= len(views)
        # A traceback once a minute per kind and place (request, readiness, sealer, detector).
        assert traces <= 4
    finally:
        pg_cluster.restart()
    began = time.monotonic()
    wait_until(lambda: _ready(caller), within=30)
    wait_until(lambda: _served(caller), within=30)
    recovered = time.monotonic() - began
    assert _all_acknowledged_audited(pg_registry, before) == 3
    report(
        "postgres-stopped",
        refused_max_s=round(max(v.seconds for v in views), 2),
        readyz_s=round(ready.seconds, 2),
        healthz_s=round(health.seconds, 3),
        recovered_s=round(recovered, 2),
    )


def test_database_stalled_answers_503_in_bounded_time_and_heals(
    pg_registry: Registry, caller: Caller, pg_cluster: ThrowawayCluster
) -> None:
    assert caller.view().status == 200
    pg_cluster.freeze()
    try:
        with ThreadPoolExecutor(8) as pool:
            burst = pool.submit(lambda: [*pool.map(caller.view, range(16))])
            time.sleep(0.5)
            health = caller.probe("/healthz")  # while the burst waits on the stalled server
            views = burst.result(timeout=60)
        assert_refused(views)
        assert health.status == 200
        assert health.seconds < 1.0
        ready = caller.probe("/readyz")
        assert ready.status == 503
        assert ready.seconds < BOUND_SECONDS
    finally:
        pg_cluster.resume()
    began = time.monotonic()
    wait_until(lambda: _ready(caller), within=30)
    wait_until(lambda: _served(caller), within=30)
    report(
        "postgres-stalled",
        refused_max_s=round(max(v.seconds for v in views), 2),
        codes=sorted({str(v.code) for v in views}),
        healthz_s=round(health.seconds, 3),
        readyz_s=round(ready.seconds, 2),
        recovered_s=round(time.monotonic() - began, 2),
    )


def test_shutdown_finishes_in_bounded_time_while_the_database_is_stalled(
    pg_registry: Registry, caller: Caller, pg_cluster: ThrowawayCluster
) -> None:
    assert caller.view().status == 200
    pg_cluster.freeze()
    try:
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(caller.view, n) for n in range(4)]
            time.sleep(0.5)
            took = pg_registry.terminate()
            answers = []
            for future in pending:
                # Answered 503 before the server stopped, or cut off as it stopped.
                with contextlib.suppress(httpx.TransportError):
                    answers.append(future.result(timeout=30))
    finally:
        pg_cluster.resume()
    assert {a.status for a in answers} <= {503}, answers
    grace = float(pg_registry.env["CONTACTPOINT_SHUTDOWN_GRACE_SECONDS"])
    assert pg_registry.process is not None
    assert pg_registry.process.returncode is not None
    # uvicorn's grace, the detector's second, the sealer's final pass: 2 x grace + 1, plus slack.
    assert took < 2 * grace + 1 + 5, took
    report("postgres-stalled-sigterm", exit_s=round(took, 2), grace_s=grace)


def test_statement_timeout_turns_a_slow_database_into_503s(
    pg_registry: Registry, caller: Caller, pg_cluster: ThrowawayCluster
) -> None:
    assert caller.view().status == 200
    admin = psycopg.connect(
        pg_registry.env["CONTACTPOINT_DATABASE_URL"], autocommit=False, connect_timeout=5
    )
    try:
        # Another session holds the audit trail's table: every view's audit write waits.
        admin.execute("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
        views = [caller.view(n) for n in range(3)]
        assert_refused(views)
    finally:
        admin.rollback()
        admin.close()
    wait_until(lambda: _served(caller), within=30)
    report("postgres-statement-timeout", refused_max_s=round(max(v.seconds for v in views), 2))


def test_database_out_of_connections_refuses_then_heals(
    pg_registry: Registry, caller: Caller
) -> None:
    assert caller.view().status == 200
    url = pg_registry.env["CONTACTPOINT_DATABASE_URL"]
    hogs: list[psycopg.Connection[object]] = []
    try:
        first = psycopg.connect(url, autocommit=True, connect_timeout=5)
        hogs.append(first)
        # The registry's connections go; every slot the server has is then taken by the test.
        first.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        refusal = ""
        for _ in range(200):  # bounded: more than max_connections
            try:
                hogs.append(psycopg.connect(url, autocommit=True, connect_timeout=5))
            except psycopg.OperationalError as exc:
                refusal = str(exc)
                break
        assert "too many clients" in refusal
        views = [caller.view(n) for n in range(4)]
        assert {o.status for o in views} <= {200, 503}
        refused = [o for o in views if o.status == 503]
        assert refused, "no request met the full server"
        assert_refused(refused)
    finally:
        for conn in hogs:
            conn.close()
    began = time.monotonic()
    wait_until(lambda: _served(caller), within=30)
    report(
        "postgres-out-of-connections",
        held=len(hogs),
        refused=len(refused),
        refused_max_s=round(max(o.seconds for o in refused), 2),
        recovered_s=round(time.monotonic() - began, 2),
    )


def _load(caller: Caller, stop: threading.Event, limit: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    n = 0
    while not stop.is_set() and n < limit:
        try:
            outcomes.append(caller.view(n) if n % 2 == 0 else caller.search(n))
        except httpx.TransportError:
            break  # the server went away mid-request: not acknowledged
        n += 1
    return outcomes


def test_database_restarted_mid_load_loses_no_acknowledged_request(
    pg_registry: Registry, caller: Caller, pg_cluster: ThrowawayCluster
) -> None:
    stop = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(_load, caller, stop, 400) for _ in range(4)]
        time.sleep(2)
        pg_cluster.halt()
        time.sleep(1)
        pg_cluster.restart()
        restarted = time.monotonic()
        time.sleep(4)
        stop.set()
        outcomes = [o for load in loads for o in load.result(timeout=120)]
    assert {o.status for o in outcomes} <= {200, 503}, {(o.status, o.code) for o in outcomes}
    refused = [o for o in outcomes if o.status == 503]
    assert refused, "the restart was not seen by any request"
    assert {o.code for o in refused} <= BUSY
    assert max(o.seconds for o in outcomes) < BOUND_SECONDS
    assert any(o.status == 200 for o in outcomes[-8:]), "not served again after the restart"
    wait_until(lambda: _served(caller), within=30)
    acknowledged = _all_acknowledged_audited(pg_registry, outcomes)
    report(
        "postgres-restart-under-load",
        requests=len(outcomes),
        acknowledged=acknowledged,
        refused=len(refused),
        slowest_s=round(max(o.seconds for o in outcomes), 2),
        served_again_within_s=round(
            min(o.at for o in outcomes if o.status == 200 and o.at > restarted) - restarted, 2
        ),
    )


def test_registry_killed_mid_burst_loses_no_acknowledged_request(
    pg_registry: Registry, caller: Caller
) -> None:
    stop = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(_load, caller, stop, 300) for _ in range(4)]
        time.sleep(2)
        pg_registry.kill()
        stop.set()
        outcomes = [o for load in loads for o in load.result(timeout=60)]
    began = time.monotonic()
    pg_registry.start()
    restarted = time.monotonic() - began
    acknowledged = _all_acknowledged_audited(pg_registry, outcomes)
    assert acknowledged > 0
    # The sealer seals what the killed process left pending; then the whole trail verifies.
    wait_until(lambda: _served(caller), within=30)
    time.sleep(2)
    verify = subprocess.run(
        [sys.executable, "-m", "reference_app.cli", "audit", "verify"],
        env=pg_registry.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    assert "audit log intact" in verify.stdout
    report(
        "registry-sigkill",
        acknowledged=acknowledged,
        restart_to_ready_s=round(restarted, 2),
        verify=verify.stdout.strip().splitlines()[0],
    )
