"""Separation of duties: nobody handles an alert about themselves (403 ``own_alert``, on the trail
as ``access:denied``); another data manager does; the ``alert_separation`` switch lets them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.kit.controls import Control
from tests.fixtures.world import LA_A, Account, World, strict_world
from tests.reference_app.alerts.test_workflow import tags_for_alert

STEPS = ["acknowledge", "investigate", "close", "suspend-subject", "reinstate-subject"]


def own_alert(world: World) -> tuple[int, Account, dict[str, str]]:
    """A data manager asks to lift a shield, which alerts the LA's team about them; return the
    alert's id, the data manager and their session."""
    me = world.new_account(Role.LA_DATA_MANAGER, LA_A)
    headers = world.login(me)
    child = world.child(shielded=True)
    asked = world.client.post(
        f"/api/v1/children/{child.id}/shield", json={"shielded": False}, headers=headers
    )
    assert asked.status_code == 202, asked.text
    alerts = world.client.get(
        "/api/v1/alerts", params={"kind": "unshield_requested", "limit": 500}, headers=headers
    ).json()
    [alert] = [a for a in alerts if a["child_id"] == child.id]
    assert alert["subject_user_id"] == me.id
    return alert["id"], me, headers


def denials(world: World, user_id: int) -> list[dict[str, object]]:
    query = select(AuditEvent).where(
        AuditEvent.tag == "access:denied", AuditEvent.actor_id == user_id
    )
    with world.ctx.sessions() as db:
        return [json.loads(e.details) for e in db.scalars(query.order_by(AuditEvent.id))]


@pytest.mark.parametrize("step", STEPS)
def test_nobody_acts_on_an_alert_about_themselves(world: World, step: str) -> None:
    alert_id, me, headers = own_alert(world)
    refused = world.client.post(f"/api/v1/alerts/{alert_id}/{step}", json={}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "own_alert"
    assert tags_for_alert(world, alert_id) == ["alert:raised"]
    [attempt] = denials(world, me.id)
    assert attempt["code"] == "own_alert"
    assert attempt["route"] == f"/api/v1/alerts/{{alert_id}}/{step}"


def test_another_data_manager_handles_it(world: World) -> None:
    alert_id, _, headers = own_alert(world)
    other = world.headers(Role.LA_DATA_MANAGER, LA_A)
    for step, status in (("acknowledge", "acknowledged"), ("close", "closed")):
        moved = world.client.post(f"/api/v1/alerts/{alert_id}/{step}", json={}, headers=other)
        assert moved.status_code == 200
        assert moved.json()["status"] == status
    # Still not theirs once it is closed: no step of theirs is on the trail.
    late = world.client.post(f"/api/v1/alerts/{alert_id}/investigate", json={}, headers=headers)
    assert late.json()["error"]["code"] == "own_alert"


def test_with_alert_separation_off_the_subject_closes_their_own_alert(world: World) -> None:
    with strict_world(world, off=[Control.ALERT_SEPARATION]) as weak:
        alert_id, _, headers = own_alert(weak)
        closed = weak.client.post(f"/api/v1/alerts/{alert_id}/close", json={}, headers=headers)
        assert closed.status_code == 200
        assert closed.json()["status"] == "closed"
