"""Involvement claims: a practitioner's registration widens no view until a data manager of the
child's LA confirms it; every claim alerts that LA; claims are capped a day; and with
``claim_confirmation`` switched off a claim counts at once, unalerted."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.kit.controls import Control
from reference_app.services import service
from reference_app.services.models import Involvement, OrganisationKind
from tests.fixtures.stale import principal_of, read, refused, stale_call
from tests.fixtures.world import LA_A, LA_B, Account, World, strict_world


def _view(world: World, headers: dict[str, str], child_id: str) -> dict[str, Any]:
    response = world.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": "service_delivery"}
    )
    assert response.status_code == 200
    access: dict[str, Any] = response.json()["access"]
    return access


def _claim(world: World, headers: dict[str, str], child_id: str) -> Any:
    return world.client.post(f"/api/v1/children/{child_id}/involvements", json={}, headers=headers)


def _decide(world: World, step: str, involvement: int, headers: dict[str, str]) -> Any:
    return world.client.post(f"/api/v1/involvements/{involvement}/{step}", headers=headers)


def _claim_alerts(world: World, la: str, child_id: str) -> list[dict[str, Any]]:
    manager = world.login(world.new_account(Role.LA_DATA_MANAGER, la))
    found = world.client.get(
        "/api/v1/alerts", params={"kind": "involvement_claim", "limit": 500}, headers=manager
    ).json()
    return [a for a in found if a["child_id"] == child_id]


def _tags(world: World, child_id: str) -> list[str]:
    query = select(AuditEvent.tag).where(AuditEvent.child_id == child_id).order_by(AuditEvent.id)
    with world.ctx.sessions() as db:
        return list(db.scalars(query))


def _claimer_and_colleague(world: World) -> tuple[Account, dict[str, str], dict[str, str]]:
    claimer = world.new_account(Role.HEALTH_PRACTITIONER, LA_A)
    colleague = world.new_account(Role.HEALTH_PRACTITIONER, LA_A)
    assert claimer.organisation_id == colleague.organisation_id
    return claimer, world.login(claimer), world.login(colleague)


def test_an_unconfirmed_claim_widens_no_view(world: World) -> None:
    child = world.child(LA_B)
    _, claimer, colleague = _claimer_and_colleague(world)
    made = _claim(world, claimer, child.id)
    assert made.status_code == 201
    assert (made.json()["confirmed"], made.json()["confirmed_at"]) == (False, None)
    for headers in (claimer, colleague):
        access = _view(world, headers, child.id)
        assert (access["level"], access["relationship"]) == ("limited", "self_claimed")


def test_a_claim_alerts_the_childs_la(world: World) -> None:
    child = world.child(LA_B)
    claimer = world.new_account(Role.EDUCATION_PRACTITIONER, LA_A)
    made = _claim(world, world.login(claimer), child.id)
    [alert] = _claim_alerts(world, LA_B, child.id)
    assert alert["subject_user_id"] == claimer.id
    assert alert["details"]["involvement_id"] == made.json()["id"]
    # Raised to the child's LA; the claimer's employing LA sees the same alert only as one
    # about its own staff (no second alert is raised there).
    assert [a["id"] for a in _claim_alerts(world, LA_A, child.id)] == [alert["id"]]


def test_the_childs_data_manager_confirms_and_the_service_is_involved(world: World) -> None:
    child = world.child(LA_B)
    _, claimer, colleague = _claimer_and_colleague(world)
    involvement = _claim(world, claimer, child.id).json()["id"]
    manager = world.headers(Role.LA_DATA_MANAGER, LA_B)
    confirmed = _decide(world, "confirm", involvement, manager)
    assert confirmed.status_code == 200
    assert confirmed.json()["confirmed"] is True
    for headers in (claimer, colleague):
        access = _view(world, headers, child.id)
        # Full now; the detector still scores these views until the confirmation settles.
        assert (access["level"], access["relationship"]) == ("full", "involved_recent")
    again = _decide(world, "confirm", involvement, manager)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "involvement_confirmed")
    assert "involvement:confirmed" in _tags(world, child.id)


def test_a_rejected_claim_ends(world: World) -> None:
    child = world.child(LA_B)
    _, claimer, _ = _claimer_and_colleague(world)
    involvement = _claim(world, claimer, child.id).json()["id"]
    manager = world.headers(Role.LA_DATA_MANAGER, LA_B)
    rejected = _decide(world, "reject", involvement, manager)
    assert rejected.status_code == 200
    assert rejected.json()["ended_on"] is not None
    assert _view(world, claimer, child.id)["level"] == "limited"
    late = _decide(world, "confirm", involvement, manager)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "involvement_ended")
    assert "involvement:rejected" in _tags(world, child.id)


def test_only_the_childs_la_may_decide_and_others_are_told_not_found(world: World) -> None:
    child = world.child(LA_B)
    _, claimer, _ = _claimer_and_colleague(world)
    involvement = _claim(world, claimer, child.id).json()["id"]
    other_la = world.headers(Role.LA_DATA_MANAGER, LA_A)
    for step in ("confirm", "reject"):
        for target in (involvement, involvement + 10**6):
            refused = _decide(world, step, target, other_la)
            assert (refused.status_code, refused.json()["error"]["code"]) == (
                404,
                "involvement_not_found",
            )
        # The claimer holds no permission to decide at all (the same answer for any id).
        assert _decide(world, step, involvement, claimer).status_code == 403
    assert _view(world, claimer, child.id)["level"] == "limited"


def test_settled_involvements_vouch_for_views_and_young_ones_do_not(world: World) -> None:
    account = world.new_account(Role.EDUCATION_PRACTITIONER, LA_A)
    headers = world.login(account)
    settled, young = world.child(LA_B), world.child(LA_B)
    world.involve(settled, OrganisationKind.SCHOOL, LA_A, confirmed_days_ago=8)
    world.involve(young, OrganisationKind.SCHOOL, LA_A, confirmed_days_ago=6)
    access = _view(world, headers, settled.id)
    assert (access["level"], access["relationship"]) == ("full", "involved")
    access = _view(world, headers, young.id)
    assert (access["level"], access["relationship"]) == ("full", "involved_recent")


def test_claims_are_capped_a_day(world: World) -> None:
    with strict_world(world, involvement_claims_per_day=2) as w:
        account = w.new_account(Role.HEALTH_PRACTITIONER, LA_A)
        headers = w.login(account)
        for _ in range(2):
            assert _claim(w, headers, w.child(LA_B).id).status_code == 201
        refused = _claim(w, headers, w.child(LA_B).id)
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            429,
            "claim_limit_reached",
        )
        assert "retry-after" in refused.headers
        w.clock.advance(86_401)  # a day on, the oldest claims fall out of the window
        assert _claim(w, w.login(account), w.child(LA_B).id).status_code == 201


def test_with_claim_confirmation_off_a_claim_counts_at_once_unalerted(world: World) -> None:
    with strict_world(world, off=[Control.CLAIM_CONFIRMATION]) as w:
        child = w.child(LA_B)
        _, claimer, colleague = _claimer_and_colleague(w)
        assert _claim(w, claimer, child.id).status_code == 201
        for headers in (claimer, colleague):
            access = _view(w, headers, child.id)
            assert (access["level"], access["relationship"]) == ("full", "involved")
        assert _claim_alerts(w, LA_B, child.id) == []


@pytest.mark.parametrize("decision", ["confirm", "reject"])
def test_deciding_a_claim_closes_its_alert(world: World, decision: str) -> None:
    child = world.child(LA_B)
    _, claimer, _ = _claimer_and_colleague(world)
    involvement = _claim(world, claimer, child.id).json()["id"]
    [alert] = _claim_alerts(world, LA_B, child.id)
    assert alert["status"] == "open"
    manager = world.headers(Role.LA_DATA_MANAGER, LA_B)
    assert _decide(world, decision, involvement, manager).status_code == 200
    [after] = _claim_alerts(world, LA_B, child.id)
    assert after["status"] == "closed"
    assert "alert:closed" in _tags(world, child.id)


@pytest.mark.parametrize(
    ("stale", "meanwhile"), [("confirm", "reject"), ("reject", "confirm"), ("confirm", "confirm")]
)
def test_a_claim_decided_since_it_was_read_is_not_decided_again(
    world: World, stale: str, meanwhile: str
) -> None:
    child = world.child(LA_B)
    _, claimer, _ = _claimer_and_colleague(world)
    involvement = _claim(world, claimer, child.id).json()["id"]
    late = principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_B))
    with stale_call(world) as call:
        seen = read(call, lambda c: c.db.get(Involvement, involvement))  # held: mapped weakly
        assert seen.confirmed_at is None
        assert seen.ended_on is None
        other = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_B))
        assert _decide(world, meanwhile, involvement, other).status_code == 200
        decide = getattr(service, stale)
        assert refused(call, decide, late, involvement) == (409, "state_changed")
    tags = _tags(world, child.id)
    decided = [t for t in tags if t in ("involvement:confirmed", "involvement:rejected")]
    assert decided == [f"involvement:{meanwhile}ed"]
    assert tags.count("alert:closed") == 1
    with world.ctx.sessions() as db:
        stored = db.get(Involvement, involvement)
        assert stored is not None
        assert (stored.confirmed_at is not None) is (meanwhile == "confirm")
        assert (stored.ended_on is not None) is (meanwhile == "reject")
