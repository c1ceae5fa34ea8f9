"""The limits store (Redis) stopped or stalled under the registry: views and logins are refused
503 ``dependency_unavailable`` within the bound (never served without their limits check),
``/readyz`` names the limits store, ``/healthz`` stays quick, and service returns by itself."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import (
    Caller,
    Registry,
    assert_alive_not_ready,
    assert_refused,
    logged,
    report,
    wait_until,
)
from tests.fixtures.redis import ThrowawayRedis

pytestmark = pytest.mark.fault


def _ready(caller: Caller) -> bool:
    """/readyz says ready"""
    return caller.probe("/readyz").status == 200


@pytest.mark.parametrize("fault", ["stopped", "stalled"])
def test_limits_store_down_refuses_views_and_logins_then_heals(
    pg_registry: Registry, caller: Caller, redis_server: ThrowawayRedis, fault: str
) -> None:
    assert caller.view().status == 200
    if fault == "stopped":
        redis_server.stop()
    else:
        redis_server.freeze()
    try:
        views = [caller.view(n) for n in range(6)]
        assert_refused(views)
        login = caller.request(
            "POST",
            "/api/v1/auth/login",
            json={"username": caller.account.username, "password": "wrong", "otp": "000000"},
        )
        assert_refused([login])
        ready, health = assert_alive_not_ready(caller)
        lines, traces = logged(pg_registry, "limits unavailable")
        assert lines >= len(views) + 1  # one line per refused request
        assert traces <= 2  # a traceback once a minute per kind and place, not per request
    finally:
        if fault == "stopped":
            redis_server.start()
        else:
            redis_server.resume()
    began = time.monotonic()
    wait_until(lambda: _ready(caller), within=20)
    healed = wait_until(lambda: caller.view().status == 200, within=20)
    report(
        f"redis-{fault}",
        refused_max_s=round(max(v.seconds for v in views), 2),
        login_refused_s=round(login.seconds, 2),
        readyz_s=round(ready.seconds, 2),
        healthz_s=round(health.seconds, 3),
        recovered_s=round(time.monotonic() - began, 2),
        healed_after_ready_s=round(healed, 2),
    )
