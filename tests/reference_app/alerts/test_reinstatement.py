"""Suspension authority: the subject's employing LA sees alerts about its staff, and only two of
its data managers, through an alert still open, reinstate a suspended practitioner."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.kit.controls import Control
from reference_app.practitioners.models import Practitioner
from tests.fixtures.world import LA_A, LA_B, World, strict_world
from tests.reference_app.alerts.test_canaries import make_canary


def manager(world: World, la: str) -> dict[str, str]:
    """A data manager of ``la`` of its own (a fresh session: OTP steps are used once)."""
    return world.login(world.new_account(Role.LA_DATA_MANAGER, la))


def suspended_snooper(world: World, child_la: str = LA_A) -> tuple[int, int, dict[str, str]]:
    """A practitioner of LA B opens a canary of ``child_la`` and its team suspends them.

    Returns the alert id, the snooper's id and the child's LA team's headers.
    """
    snooper = world.new_account(Role.HEALTH_PRACTITIONER, LA_B)
    headers = {**world.login(snooper), "X-Access-Reason": "safeguarding"}
    canary = make_canary(world, child_la).id
    assert world.client.get(f"/api/v1/children/{canary}", headers=headers).status_code == 200
    team = manager(world, child_la)
    alerts = world.client.get(
        "/api/v1/alerts", params={"kind": "canary_access", "limit": 500}, headers=team
    ).json()
    [alert] = [a for a in alerts if a["child_id"] == canary]
    suspended = step(world, alert["id"], "suspend-subject", team)
    assert suspended.status_code == 200
    assert suspended.json()["subject"]["status"] == "suspended"
    return alert["id"], snooper.id, team


def step(world: World, alert_id: int, name: str, headers: dict[str, str], **body: Any) -> Any:
    return world.client.post(f"/api/v1/alerts/{alert_id}/{name}", json=body, headers=headers)


def status_of(world: World, user_id: int) -> str:
    with world.ctx.sessions() as db:
        user = db.get(Practitioner, user_id)
        assert user is not None
        return user.status


def refused(response: Any, status: int, code: str) -> bool:
    return bool(response.status_code == status and response.json()["error"]["code"] == code)


def test_the_employing_la_sees_alerts_about_its_staff(world: World) -> None:
    alert_id, snooper_id, _ = suspended_snooper(world)
    home = manager(world, LA_B)
    listed = world.client.get("/api/v1/alerts", params={"limit": 500}, headers=home).json()
    assert alert_id in [a["id"] for a in listed]
    one = world.client.get(f"/api/v1/alerts/{alert_id}", headers=home)
    assert one.status_code == 200
    assert one.json()["subject_user_id"] == snooper_id


def test_another_las_data_manager_cannot_reinstate(world: World) -> None:
    # The child's LA suspended the snooper; it is not the LA that employs them.
    alert_id, snooper_id, team = suspended_snooper(world)
    response = step(world, alert_id, "reinstate-subject", team)
    assert refused(response, 403, "reinstatement_not_permitted")
    assert status_of(world, snooper_id) == "suspended"


def test_a_closed_alert_cannot_reinstate(world: World) -> None:
    alert_id, snooper_id, team = suspended_snooper(world)
    assert step(world, alert_id, "close", team, note="Referred to HR").status_code == 200
    response = step(world, alert_id, "reinstate-subject", manager(world, LA_B))
    assert refused(response, 409, "alert_closed")
    assert status_of(world, snooper_id) == "suspended"


def test_one_data_manager_asks_and_another_of_the_employing_la_confirms(world: World) -> None:
    alert_id, snooper_id, _ = suspended_snooper(world)
    first, second = manager(world, LA_B), manager(world, LA_B)
    asked = step(world, alert_id, "reinstate-subject", first, note="Cleared by review")
    assert asked.status_code == 202
    assert asked.json()["reinstatement_requested_by"] is not None
    assert asked.json()["subject"]["status"] == "suspended"
    again = step(world, alert_id, "reinstate-subject", first)
    assert refused(again, 403, "own_reinstatement_request")
    assert status_of(world, snooper_id) == "suspended"
    confirmed = step(world, alert_id, "reinstate-subject", second)
    assert confirmed.status_code == 200
    assert confirmed.json()["subject"]["status"] == "active"
    assert confirmed.json()["reinstatement_requested_by"] is None
    with world.ctx.sessions() as db:
        events = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.details.contains(f'"practitioner_id":{snooper_id}'))
            .order_by(AuditEvent.id)
        ).all()
    assert [e.tag for e in events] == [
        "user:suspended",
        "user:reinstatement:requested",
        "user:reinstated",
    ]
    assert events[1].actor_id != events[2].actor_id
    assert f'"requested_by":{events[1].actor_id}' in events[2].details


def test_with_the_control_off_the_childs_la_reinstates_alone_even_when_closed(
    world: World,
) -> None:
    with strict_world(world, off=[Control.SUSPENSION_AUTHORITY]) as weak:
        alert_id, snooper_id, team = suspended_snooper(weak)
        assert step(weak, alert_id, "close", team).status_code == 200
        response = step(weak, alert_id, "reinstate-subject", team)
        assert response.status_code == 200
        assert status_of(weak, snooper_id) == "active"
