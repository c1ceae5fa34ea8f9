"""The second person on an export is a real one: an established account whose role is not new,
neither made nor re-roled nor confirmed by the requester."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from reference_app.kit.controls import Control
from reference_app.practitioners.models import Practitioner
from tests.fixtures.exports import (
    Manager,
    alerts_since,
    events,
    flow,
    last_alert_id,
    last_event_id,
    switch_off,
)
from tests.fixtures.world import World

CODE = "export_approver_not_independent"


def _set(world: World, approver: Manager, **values: Any) -> None:
    with world.ctx.sessions() as db, db.begin():
        db.execute(update(Practitioner).where(Practitioner.id == approver.id).values(**values))


def _days_ago(world: World, days: float) -> Any:
    return world.clock.now() - timedelta(days=days)


def _refused(world: World, values: dict[str, Any], cause: str) -> None:
    f = flow(world, 1)
    values = {
        key: (f.requester.id if value == "requester" else value) for key, value in values.items()
    }
    _set(world, f.approver, **values)
    assert f.request().status_code == 201
    before, first_event = last_alert_id(world), last_event_id(world)
    refused = f.approve()
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == CODE
    assert [a.kind for a in alerts_since(world, before)] == ["export_violation"]
    violations = events(world, "export:violation", first_event)
    assert [e["details"]["cause"] for e in violations] == [cause]
    assert f.link().json()["error"]["code"] == "export_not_approved"


def test_an_account_made_this_week_cannot_approve(world: World) -> None:
    _refused(world, {"created_at": _days_ago(world, 2)}, "account_too_new")


def test_an_old_account_given_its_role_this_week_cannot_approve(world: World) -> None:
    _refused(world, {"role_granted_at": _days_ago(world, 1)}, "role_too_new")


@pytest.mark.parametrize("column", ["created_by", "role_granted_by", "role_confirmed_by"])
def test_an_account_the_requester_made_or_re_roled_cannot_approve(
    world: World, column: str
) -> None:
    _refused(world, {column: "requester"}, "made_by_requester")


def test_an_established_independent_account_approves(world: World) -> None:
    f = flow(world, 1)
    days = world.ctx.settings.approver_min_account_age_days
    _set(world, f.approver, created_at=_days_ago(world, days + 1), role_granted_at=None)
    assert f.request().status_code == 201
    assert f.approve().status_code == 200


def test_without_approver_independence_a_new_account_approves(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On: test_an_account_made_this_week_cannot_approve,
    test_an_account_the_requester_made_or_re_roled_cannot_approve."""
    switch_off(world, monkeypatch, Control.APPROVER_INDEPENDENCE)
    f = flow(world, 1)
    _set(world, f.approver, created_at=world.clock.now(), created_by=f.requester.id)
    assert f.request().status_code == 201
    before = last_alert_id(world)
    assert f.approve().status_code == 200
    assert alerts_since(world, before) == []
