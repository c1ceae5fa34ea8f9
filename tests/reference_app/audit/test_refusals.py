"""Every refused API request is on the trail, by route template, in the tamper-evident log
(refusal_audit); unauthenticated floods are bounded per source and summarised."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent, AuditLogEntry
from reference_app.audit.service import seal_all
from reference_app.kit.controls import Control
from tests.fixtures.world import LA_A, LA_B, World, strict_world


def _events(world: World, response) -> list[AuditEvent]:
    """The trail's events for one request (by its request id)."""
    with world.ctx.sessions() as db:
        query = select(AuditEvent).where(AuditEvent.request_id == response.headers["x-request-id"])
        return list(db.scalars(query).all())


def _only(world: World, response) -> tuple[AuditEvent, dict]:
    events = _events(world, response)
    assert len(events) == 1, [e.tag for e in events]
    return events[0], json.loads(events[0].details)


def test_probing_another_las_child_is_recorded_by_route_template(world: World) -> None:
    child = world.child(LA_A)
    manager = world.accounts[(Role.LA_DATA_MANAGER, LA_B)]
    response = world.client.patch(
        f"/api/v1/children/{child.id}",
        json={"given_name": "Z"},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_B),
    )
    assert response.status_code == 404
    event, details = _only(world, response)
    assert (event.tag, event.outcome, event.actor_id) == ("access:refused", "denied", manager.id)
    assert details == {
        "method": "PATCH",
        "route": "/api/v1/children/{child_id}",
        "status": 404,
        "code": "child_not_found",
    }
    assert event.source == "testclient"
    # The child probed is named in its column, so the child's LA sees the probe on its trail.
    assert event.child_id == child.id
    assert child.id not in event.details


def test_a_bad_reason_and_an_invalid_body_are_recorded(world: World) -> None:
    child = world.child(LA_A)
    headers = world.headers(Role.HEALTH_PRACTITIONER)
    bad_reason = world.client.get(
        f"/api/v1/children/{child.id}", headers={**headers, "X-Access-Reason": "curiosity"}
    )
    assert bad_reason.status_code == 400
    event, details = _only(world, bad_reason)
    assert (event.tag, details["status"], details["code"]) == (
        "access:refused",
        400,
        "invalid_access_reason",
    )
    invalid = world.client.post("/api/v1/children/search", json={"nope": 1}, headers=headers)
    assert invalid.status_code == 422
    event, details = _only(world, invalid)
    assert (details["route"], details["status"], details["code"]) == (
        "/api/v1/children/search",
        422,
        "invalid_request",
    )


def test_an_unauthenticated_refusal_is_recorded_without_its_raw_path(world: World) -> None:
    missing = world.client.get("/api/v1/no-such-route/PERSONAL-NAME")
    assert missing.status_code == 404
    event, details = _only(world, missing)
    assert (event.tag, event.actor_id, details["route"], details["code"]) == (
        "access:refused",
        None,
        None,
        "not_found",
    )
    assert "PERSONAL" not in event.details
    unauthenticated = world.client.get("/api/v1/exports")
    assert unauthenticated.status_code == 401
    event, details = _only(world, unauthenticated)
    assert (event.tag, details["route"], details["status"]) == (
        "access:denied",
        "/api/v1/exports",
        401,
    )


def test_a_refusal_is_sealed_into_the_log(world: World) -> None:
    response = world.client.get(
        "/api/v1/alerts/999999", headers=world.headers(Role.LA_DATA_MANAGER)
    )
    assert response.status_code == 404
    event, details = _only(world, response)
    assert (details["route"], details["code"]) == ("/api/v1/alerts/{alert_id}", "alert_not_found")
    seal_all(world.ctx)
    with world.ctx.sessions() as db:
        entry = db.scalars(select(AuditLogEntry).where(AuditLogEntry.event_id == event.id)).one()
    assert entry.seq >= 0


def test_an_unauthenticated_flood_is_recorded_bounded_and_summarised(world: World) -> None:
    with strict_world(world, refusal_audit_per_minute=3) as w:
        # The bound is per minute of the clock: start the flood just after a minute begins, so
        # its ten requests all fall in one minute.
        now = w.clock.now()
        w.clock.advance(60 - now.second - now.microsecond / 1e6 + 0.5)
        flood = TestClient(w.client.app, client=("203.0.113.9", 50000))
        for _ in range(10):
            assert flood.get("/api/v1/no-such-route").status_code == 404
        with w.ctx.sessions() as db:
            query = select(AuditEvent).where(AuditEvent.source == "203.0.113.9")
            events = [json.loads(e.details) for e in db.scalars(query).all()]
    # Three one by one, then one summary of every three (at the 6th and the 9th).
    assert [e.get("summarised") for e in events] == [None, None, None, 3, 3]


def test_with_refusal_audit_off_a_404_leaves_no_trace_but_a_403_still_does(world: World) -> None:
    """On: test_probing_another_las_child_is_recorded_by_route_template."""
    with strict_world(world, off=[Control.REFUSAL_AUDIT]) as w:
        child = w.child(LA_A)
        headers = w.login(w.new_account(Role.LA_DATA_MANAGER, la=LA_B))
        probe = w.client.patch(
            f"/api/v1/children/{child.id}", json={"given_name": "Z"}, headers=headers
        )
        assert probe.status_code == 404
        assert _events(w, probe) == []
        denied = w.client.post("/api/v1/users", json={}, headers=headers)
        assert denied.status_code == 403
        assert [e.tag for e in _events(w, denied)] == ["access:denied"]


def test_bodies_refused_before_routing_are_recorded_too(world: World) -> None:
    """Too large or nested too deep: answered by the middleware, on the trail all the same."""
    headers = world.headers(Role.HEALTH_PRACTITIONER)
    limit = world.ctx.settings.max_request_bytes
    large = world.client.post(
        "/api/v1/children/search",
        content=b'{"family_name": "' + b"x" * limit + b'"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert large.status_code == 413
    event, details = _only(world, large)
    assert (event.tag, event.outcome) == ("access:refused", "denied")
    assert details == {"method": "POST", "route": None, "status": 413, "code": "payload_too_large"}
    depth = world.ctx.settings.max_json_depth + 1
    deep = world.client.post(
        "/api/v1/children/search",
        content=("[" * depth + "]" * depth).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert deep.status_code == 400
    event, details = _only(world, deep)
    assert (details["status"], details["code"]) == (400, "json_too_deep")
