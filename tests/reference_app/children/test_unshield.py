"""Lifting a shield takes two data managers of the child's LA: one asks (the child stays
shielded and the LA's team is alerted), another approves; shielding stays one person's call."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.audit.models import AuditEvent
from reference_app.children.models import Child, UnshieldRequest
from reference_app.children.repository import pending_unshield
from reference_app.children.service import approve_unshield, set_shield
from reference_app.kit.controls import Control
from reference_app.kit.http import Call
from tests.fixtures.stale import INFO, principal_of, read, refused, stale_call
from tests.fixtures.world import LA_A, LA_B, Account, World, strict_world


def second_manager(world: World, la: str = LA_A) -> tuple[Account, dict[str, str]]:
    account = world.new_account(Role.LA_DATA_MANAGER, la)
    return account, world.login(account)


def unshield(world: World, child_id: str, headers: dict[str, str], **body: Any) -> Any:
    return world.client.post(
        f"/api/v1/children/{child_id}/shield", json={"shielded": False, **body}, headers=headers
    )


def approve(world: World, child_id: str, headers: dict[str, str]) -> Any:
    return world.client.post(
        f"/api/v1/children/{child_id}/unshield/approve", json={}, headers=headers
    )


def shielded(world: World, child_id: str) -> bool:
    with world.ctx.sessions() as db:
        child = db.get(Child, child_id)
        assert child is not None
        return child.shielded


def tags(world: World, child_id: str) -> list[str]:
    with world.ctx.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent.tag)
                .where(AuditEvent.child_id == child_id)
                .order_by(AuditEvent.id)
            )
        )


def test_an_unshield_waits_for_a_second_data_manager_and_alerts_the_team(world: World) -> None:
    child = world.child(shielded=True)
    first = world.headers(Role.LA_DATA_MANAGER)
    asked = unshield(world, child.id, first, decision_note="Family left the refuge")
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert body["shielded"] is True
    pending = body["pending_unshield"]
    assert pending["requested_by"] == world.accounts[(Role.LA_DATA_MANAGER, LA_A)].id
    assert shielded(world, child.id)
    # The LA's team is alerted, with a reference to the child and nothing more.
    _, second = second_manager(world)
    alerts = world.client.get(
        "/api/v1/alerts", params={"kind": "unshield_requested"}, headers=second
    ).json()
    [alert] = [a for a in alerts if a["child_id"] == child.id]
    assert alert["id"] == pending["alert_id"]
    assert alert["details"] == {"unshield_request_id": pending["id"]}
    assert child.family_name not in str(alert)
    assert tags(world, child.id) == ["child:unshield:requested", "alert:raised"]
    # Asking again joins the pending request: no second alert, no second request.
    again = unshield(world, child.id, first)
    assert again.status_code == 202
    assert again.json()["pending_unshield"]["id"] == pending["id"]
    assert tags(world, child.id) == ["child:unshield:requested", "alert:raised"]


def test_a_second_data_manager_approves_and_the_shield_is_lifted(world: World) -> None:
    child = world.child(shielded=True)
    assert unshield(world, child.id, world.headers(Role.LA_DATA_MANAGER)).status_code == 202
    approver, second = second_manager(world)
    approved = approve(world, child.id, second)
    assert approved.status_code == 200, approved.text
    assert approved.json() == {"child_id": child.id, "shielded": False, "pending_unshield": None}
    assert not shielded(world, child.id)
    assert tags(world, child.id)[-2:] == ["child:unshield:approved", "child:unshielded"]
    with world.ctx.sessions() as db:
        [request] = db.scalars(
            select(UnshieldRequest).where(UnshieldRequest.child_id == child.id)
        ).all()
        assert (request.status, request.decided_by) == ("approved", approver.id)
    # Nothing is left to approve.
    again = approve(world, child.id, world.headers(Role.LA_DATA_MANAGER))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "no_pending_unshield"


def test_the_requester_cannot_approve_their_own_unshield(world: World) -> None:
    child = world.child(shielded=True)
    first = world.headers(Role.LA_DATA_MANAGER)
    assert unshield(world, child.id, first).status_code == 202
    own = approve(world, child.id, first)
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "own_unshield_request"
    assert shielded(world, child.id)


def test_only_a_data_manager_of_the_childs_la_approves(world: World) -> None:
    child = world.child(shielded=True)
    assert unshield(world, child.id, world.headers(Role.LA_DATA_MANAGER)).status_code == 202
    elsewhere = approve(world, child.id, world.headers(Role.LA_DATA_MANAGER, LA_B))
    assert elsewhere.status_code == 404
    teacher = approve(world, child.id, world.headers(Role.EDUCATION_PRACTITIONER))
    assert teacher.status_code == 403
    assert shielded(world, child.id)


def test_shielding_stays_immediate_and_withdraws_a_pending_unshield(world: World) -> None:
    child = world.child(shielded=True)
    first = world.headers(Role.LA_DATA_MANAGER)
    assert unshield(world, child.id, first).status_code == 202
    _, second = second_manager(world)
    kept = world.client.post(
        f"/api/v1/children/{child.id}/shield", json={"shielded": True}, headers=second
    )
    assert kept.status_code == 200
    assert kept.json()["pending_unshield"] is None
    assert tags(world, child.id)[-2:] == ["child:shielded", "child:unshield:withdrawn"]
    assert approve(world, child.id, second).status_code == 409
    assert shielded(world, child.id)
    # An unshielded child is shielded by one data manager, at once.
    open_child = world.child()
    now = world.client.post(
        f"/api/v1/children/{open_child.id}/shield", json={"shielded": True}, headers=first
    )
    assert now.status_code == 200
    assert shielded(world, open_child.id)


def test_with_the_control_off_one_data_manager_unshields_at_once(world: World) -> None:
    with strict_world(world, off=[Control.UNSHIELD_TWO_PERSON]) as weak:
        child = weak.child(shielded=True)
        _, alone = second_manager(weak)
        done = unshield(weak, child.id, alone)
        assert done.status_code == 200
        assert done.json()["shielded"] is False
        assert not shielded(weak, child.id)
        assert tags(weak, child.id) == ["child:unshielded"]


RACING_ROUNDS = 10


def _ask_together(world: World, child_id: str, racers: list[Principal]) -> list[BaseException]:
    """Each racer asks to lift the child's shield, all at the same moment; what went wrong."""
    barrier = threading.Barrier(len(racers), timeout=30)
    failures: list[BaseException] = []

    def ask(who: Principal) -> None:
        try:
            with world.ctx.sessions() as db, db.begin():
                call = Call(ctx=world.ctx, db=db, info=INFO)
                barrier.wait()  # the child's row lock (SQLite: the write lock) queues them
                set_shield(call, who, child_id, False, "harness race")
        except BaseException as exc:  # reported by the caller
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(who,)) for who in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failures


def test_two_data_managers_asking_to_unshield_at_once_make_one_request(world: World) -> None:
    for _ in range(RACING_ROUNDS):
        child = world.child(shielded=True)
        racers = [
            principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_A)) for _ in range(2)
        ]
        assert _ask_together(world, child.id, racers) == []
        # The second asker joined the first's request: one request, one alert, one event.
        with world.ctx.sessions() as db:
            requests = db.scalars(
                select(UnshieldRequest).where(UnshieldRequest.child_id == child.id)
            ).all()
        assert len(requests) == 1
        assert tags(world, child.id).count("child:unshield:requested") == 1
        assert shielded(world, child.id)


def test_an_approval_read_before_the_unshield_was_withdrawn_is_refused(world: World) -> None:
    child = world.child(shielded=True)
    requester = world.headers(Role.LA_DATA_MANAGER)
    assert unshield(world, child.id, requester).status_code == 202
    late = principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_A))
    with stale_call(world) as call:
        seen = read(call, lambda c: pending_unshield(c.db, child.id))  # held: mapped weakly
        assert seen is not None
        # Shielding again withdraws the pending unshield.
        again = world.client.post(
            f"/api/v1/children/{child.id}/shield", json={"shielded": True}, headers=requester
        )
        assert again.status_code == 200
        assert refused(call, approve_unshield, late, child.id, None) == (
            409,
            "no_pending_unshield",
        )
    assert shielded(world, child.id)
    assert "child:unshield:approved" not in tags(world, child.id)
