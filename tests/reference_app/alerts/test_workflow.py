"""The management team's alert workflow: list, acknowledge, investigate, close, suspend and
reinstate the subject; each step audited; other LAs and other roles kept out. Who may reinstate
is tested in test_reinstatement."""

from __future__ import annotations

from typing import Any

import pytest

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from tests.fixtures.world import LA_A, LA_B, World
from tests.reference_app.alerts.test_canaries import make_canary


def raise_canary_alert(world: World, snooper_la: str = LA_B) -> tuple[dict[str, Any], Any]:
    """A fresh snooper (of LA B unless told) opens a canary of LA A; return the alert and the
    snooper's account."""
    snooper = world.new_account(Role.HEALTH_PRACTITIONER, snooper_la)
    headers = {**world.login(snooper), "X-Access-Reason": "safeguarding"}
    canary = make_canary(world, LA_A).id
    assert world.client.get(f"/api/v1/children/{canary}", headers=headers).status_code == 200
    alerts = world.client.get(
        "/api/v1/alerts",
        params={"kind": "canary_access", "status": "open"},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_A),
    ).json()
    [alert] = [a for a in alerts if a["child_id"] == canary]
    return alert, (snooper, headers, canary)


def post(world: World, alert_id: int, step: str, la: str = LA_A, **body: Any) -> Any:
    return world.client.post(
        f"/api/v1/alerts/{alert_id}/{step}",
        json=body,
        headers=world.headers(Role.LA_DATA_MANAGER, la),
    )


def tags_for_alert(world: World, alert_id: int) -> list[str]:
    with world.ctx.sessions() as db:
        events = db.query(AuditEvent).filter(AuditEvent.details.contains(f'"alert_id":{alert_id}'))
        return [e.tag for e in events.order_by(AuditEvent.id)]


def test_an_alert_names_its_subject_and_carries_references_only(world: World) -> None:
    alert, (snooper, _, canary) = raise_canary_alert(world)
    assert {"id", "kind", "severity", "status", "created_at", "subject_user_id"} <= set(alert)
    assert alert["subject"] == {
        "id": snooper.id,
        "username": snooper.username,
        "role": "health_practitioner",
        "status": "active",
    }
    assert alert["child_id"] == canary
    one = world.client.get(
        f"/api/v1/alerts/{alert['id']}", headers=world.headers(Role.LA_DATA_MANAGER, LA_A)
    )
    assert one.json() == alert


def test_the_workflow_moves_forward_and_each_step_is_audited(world: World) -> None:
    alert, _ = raise_canary_alert(world)
    manager = world.accounts[(Role.LA_DATA_MANAGER, LA_A)]
    acknowledged = post(world, alert["id"], "acknowledge", note="Looking at it")
    assert acknowledged.status_code == 200
    assert acknowledged.json()["status"] == "acknowledged"
    assert acknowledged.json()["handled_by"] == manager.id
    assert post(world, alert["id"], "acknowledge").status_code == 409
    assert post(world, alert["id"], "investigate").json()["status"] == "investigating"
    assert post(world, alert["id"], "close", note="Disciplinary").json()["status"] == "closed"
    reopened = post(world, alert["id"], "investigate")
    assert reopened.status_code == 409
    assert reopened.json()["error"]["code"] == "alert_step_not_allowed"
    assert tags_for_alert(world, alert["id"]) == [
        "alert:raised",
        "alert:acknowledged",
        "alert:investigating",
        "alert:closed",
    ]


def test_suspending_the_subject_ends_their_session_at_once_and_reinstating_restores(
    world: World,
) -> None:
    alert, (snooper, headers, canary) = raise_canary_alert(world)
    suspended = post(world, alert["id"], "suspend-subject", note="Pending investigation")
    assert suspended.status_code == 200
    assert suspended.json()["subject"]["status"] == "suspended"
    refused = world.client.get(f"/api/v1/children/{canary}", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "account_suspended"
    assert post(world, alert["id"], "suspend-subject").status_code == 409
    # Reinstating is for two data managers of the snooper's own LA (test_reinstatement).
    asked = post(world, alert["id"], "reinstate-subject", la=LA_B)
    assert asked.status_code == 202
    confirmer = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_B))
    reinstated = world.client.post(
        f"/api/v1/alerts/{alert['id']}/reinstate-subject", json={}, headers=confirmer
    )
    assert reinstated.status_code == 200
    assert reinstated.json()["subject"]["status"] == "active"
    # The old session stays dead: the holder logs in again.
    assert world.client.get(f"/api/v1/children/{canary}", headers=headers).status_code == 401
    world.clock.advance(31)  # a new one-time code
    again = {**world.login(snooper), "X-Access-Reason": "safeguarding"}
    assert world.client.get(f"/api/v1/children/{canary}", headers=again).status_code == 200
    tags = tags_for_alert(world, alert["id"])
    assert "user:suspended" in tags
    assert "user:reinstatement:requested" in tags
    assert "user:reinstated" in tags


def test_another_las_manager_cannot_see_or_act_on_the_alert(world: World) -> None:
    # Neither the child's LA nor the snooper's employing LA: LA B has no part in it.
    alert, _ = raise_canary_alert(world, snooper_la=LA_A)
    other = world.headers(Role.LA_DATA_MANAGER, LA_B)
    assert world.client.get(f"/api/v1/alerts/{alert['id']}", headers=other).status_code == 404
    assert post(world, alert["id"], "acknowledge", la=LA_B).status_code == 404
    assert post(world, alert["id"], "suspend-subject", la=LA_B).status_code == 404


@pytest.mark.parametrize("role", [Role.SOCIAL_CARE_PRACTITIONER, Role.SYSTEM_ADMINISTRATOR])
def test_other_roles_cannot_read_or_manage_alerts(world: World, role: Role) -> None:
    alert, _ = raise_canary_alert(world)
    headers = world.headers(role, LA_A)
    assert world.client.get("/api/v1/alerts", headers=headers).status_code == 403
    step = world.client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={}, headers=headers)
    assert step.status_code == 403


def test_a_national_auditor_reads_every_las_alerts_but_cannot_manage_them(world: World) -> None:
    alert, _ = raise_canary_alert(world)
    auditor = world.headers(Role.NATIONAL_AUDITOR, LA_B)
    listed = world.client.get("/api/v1/alerts", params={"limit": 500}, headers=auditor).json()
    assert alert["id"] in [a["id"] for a in listed]
    step = world.client.post(f"/api/v1/alerts/{alert['id']}/close", json={}, headers=auditor)
    assert step.status_code == 403


def test_the_notification_carries_a_reference_not_personal_data(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="contactpoint.alerts")
    alert, (_, _, canary) = raise_canary_alert(world)
    [record] = [r for r in caplog.records if f'"alert_id": {alert["id"]}' in r.getMessage()]
    message = record.getMessage()
    assert canary in message  # the reference to follow
    with world.ctx.sessions() as db:
        from reference_app.children.models import Child
        from reference_app.children.service import child_identity

        child = db.get(Child, canary)
        assert child is not None
        identity = child_identity(world.ctx.crypto, child)
    for value in identity.values():
        assert value not in message
