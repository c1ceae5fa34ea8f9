"""Rectification, shielding and unshielding requests: raised on the family's behalf, decided by
another data manager of the child's LA, applied through the children service, all audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.requests.models import ChangeRequest
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, LA_B, ChildInfo, World, unique_name

JUSTIFICATION = "Father reports the family moved to a refuge address"


def manager(world: World, la: str = LA_A) -> dict[str, str]:
    return world.headers(Role.LA_DATA_MANAGER, la)


def second_manager(world: World, la: str = LA_A) -> dict[str, str]:
    return world.login(world.new_account(Role.LA_DATA_MANAGER, la))


def raise_request(
    world: World, headers: dict[str, str], child: ChildInfo, kind: str, **body: Any
) -> Any:
    return world.client.post(
        "/api/v1/requests",
        json={"child_id": child.id, "kind": kind, "justification": JUSTIFICATION, **body},
        headers=headers,
    )


def decide(world: World, request_id: int, headers: dict[str, str], **body: Any) -> Any:
    return world.client.post(f"/api/v1/requests/{request_id}/decision", json=body, headers=headers)


def trail(world: World, child_id: str) -> list[AuditEvent]:
    with world.ctx.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent).where(AuditEvent.child_id == child_id).order_by(AuditEvent.id)
            )
        )


def test_an_approved_rectification_is_applied_and_the_search_finds_the_new_name(
    world: World,
) -> None:
    child = world.child()
    new_family = unique_name()
    teacher = world.headers(Role.EDUCATION_PRACTITIONER)
    raised = raise_request(
        world, teacher, child, "rectification", changes={"family_name": new_family}
    )
    assert raised.status_code == 201, raised.text
    request_id = raised.json()["id"]
    # The practitioner sees the fields and the outcome, not the values or the free text.
    own = world.client.get(f"/api/v1/requests/{request_id}", headers=teacher).json()
    assert own["fields"] == ["family_name"]
    assert own["proposed_changes"] is None
    assert own["justification"] is None
    assert own["status"] == "pending"
    assert own["raised"]["by"]["role"] == "education_practitioner"
    # The LA's team sees it all.
    seen = world.client.get(f"/api/v1/requests/{request_id}", headers=manager(world)).json()
    assert seen["proposed_changes"] == {"family_name": new_family}
    assert seen["justification"] == JUSTIFICATION

    decided = decide(world, request_id, manager(world), decision="approve")
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["status"] == "approved"
    assert (
        body["decided"]["by"]["practitioner_id"] == world.accounts[(Role.LA_DATA_MANAGER, LA_A)].id
    )
    assert body["decided"]["decision"] == "approve"

    found = world.client.post(
        "/api/v1/children/search",
        json={"family_name": new_family, "given_name": child.given_name},
        headers=world.headers(Role.HEALTH_PRACTITIONER),
    )
    assert [r["child_id"] for r in found.json()["results"]] == [child.id]
    events = trail(world, child.id)
    assert [e.tag for e in events] == ["request:raised", "child:corrected", "request:approved"]
    assert events[0].actor_id == world.accounts[(Role.EDUCATION_PRACTITIONER, LA_A)].id
    assert events[1].details == '{"fields":["family_name"]}'
    # Free text and values are never in clear on the trail.
    for event in events:
        assert JUSTIFICATION not in event.details
        assert new_family not in event.details
    assert "justification_enc" in events[0].details


def test_a_rejection_needs_a_note_keeps_the_record_and_a_second_decision_conflicts(
    world: World,
) -> None:
    child = world.child()
    raised = raise_request(
        world, manager(world), child, "rectification", changes={"given_name": "Maisie"}
    )
    request_id = raised.json()["id"]
    decider = second_manager(world)
    no_note = decide(world, request_id, decider, decision="reject")
    assert no_note.status_code == 422
    assert no_note.json()["error"]["code"] == "note_required"
    rejected = decide(world, request_id, decider, decision="reject", note="Not supported by ID")
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decided"]["note"] == "Not supported by ID"
    for second in ({"decision": "approve"}, {"decision": "reject"}):
        again = decide(world, request_id, decider, **second)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "request_decided"
    record = world.client.get(
        f"/api/v1/children/{child.id}",
        headers={**manager(world), "X-Access-Reason": "service_delivery"},
    ).json()
    assert record["given_name"] == child.given_name
    tags = [e.tag for e in trail(world, child.id)]
    assert tags[:2] == ["request:raised", "request:rejected"]
    assert "child:corrected" not in tags


def test_a_data_manager_cannot_decide_a_request_they_raised(world: World) -> None:
    child = world.child()
    raiser = second_manager(world)
    raised = raise_request(world, raiser, child, "shielding")
    assert raised.status_code == 201
    request_id = raised.json()["id"]
    own = decide(world, request_id, raiser, decision="approve")
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "own_request"
    approved = decide(world, request_id, manager(world), decision="approve", note="Risk of harm")
    assert approved.status_code == 200
    shielded = world.client.post(
        "/api/v1/children/search",
        json={"family_name": child.family_name, "postcode": child.postcode},
        headers=world.headers(Role.HEALTH_PRACTITIONER),
    )
    assert shielded.json()["results"] == []
    tags = [e.tag for e in trail(world, child.id)]
    assert tags == ["request:raised", "child:shielded", "request:approved"]
    with world.ctx.sessions() as db:
        denial = db.scalars(
            select(AuditEvent).where(
                AuditEvent.tag == "access:denied",
                AuditEvent.request_id == own.headers["x-request-id"],
            )
        ).one()
    assert '"code":"own_request"' in denial.details


def test_unshielding_is_requested_by_the_la_and_applied(world: World) -> None:
    child = world.child(shielded=True)
    raised = raise_request(world, manager(world), child, "unshielding")
    assert raised.status_code == 201
    approved = decide(world, raised.json()["id"], second_manager(world), decision="approve")
    assert approved.status_code == 200
    view = world.client.get(
        f"/api/v1/children/{child.id}",
        headers={
            **world.headers(Role.EDUCATION_PRACTITIONER),
            "X-Access-Reason": "service_delivery",
        },
    ).json()
    assert view["shielded"] is False
    assert view["address"] == child.address
    tags = [e.tag for e in trail(world, child.id)]
    assert tags[-3:] == ["child:unshielded", "request:approved", "child:record:viewed"]


def test_a_practitioner_raises_only_for_a_child_they_see_in_full(world: World) -> None:
    teacher = world.headers(Role.EDUCATION_PRACTITIONER, LA_A)
    elsewhere = world.child(LA_B)
    refused = raise_request(world, teacher, elsewhere, "shielding")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "request_not_permitted"
    shielded = world.child(LA_A, shielded=True)
    assert raise_request(world, teacher, shielded, "unshielding").status_code == 403
    for closed in (world.child(LA_A, archived=True), world.child(LA_A, deceased=True)):
        assert raise_request(world, teacher, closed, "shielding").status_code == 404
    # Once the teacher's school works with the child, the other LA's child is in full view.
    world.involve(elsewhere, OrganisationKind.SCHOOL, la=LA_A)
    assert raise_request(world, teacher, elsewhere, "shielding").status_code == 201


def test_another_las_team_neither_raises_sees_nor_decides(world: World) -> None:
    child = world.child(LA_A)
    other = manager(world, LA_B)
    refused = raise_request(world, other, child, "shielding")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "child_not_found"
    request_id = raise_request(world, manager(world), child, "shielding").json()["id"]
    assert world.client.get(f"/api/v1/requests/{request_id}", headers=other).status_code == 404
    decided = decide(world, request_id, other, decision="approve")
    assert decided.status_code == 404
    assert decided.json()["error"]["code"] == "request_not_found"
    stranger = world.headers(Role.HEALTH_PRACTITIONER, LA_A)
    assert world.client.get(f"/api/v1/requests/{request_id}", headers=stranger).status_code == 404


@pytest.mark.parametrize("role", [Role.EDUCATION_PRACTITIONER, Role.SOCIAL_CARE_PRACTITIONER])
def test_practitioners_cannot_decide(world: World, role: Role) -> None:
    child = world.child()
    request_id = raise_request(world, manager(world), child, "shielding").json()["id"]
    response = decide(world, request_id, world.headers(role), decision="approve")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("role", [Role.NATIONAL_AUDITOR, Role.SYSTEM_ADMINISTRATOR])
def test_roles_without_the_permission_cannot_raise_or_list(world: World, role: Role) -> None:
    child = world.child()
    assert raise_request(world, world.headers(role), child, "shielding").status_code == 403
    assert world.client.get("/api/v1/requests", headers=world.headers(role)).status_code == 403


def test_listing_shows_the_la_its_requests_and_a_practitioner_their_own(world: World) -> None:
    child = world.child()
    nurse_account = world.new_account(Role.HEALTH_PRACTITIONER)
    nurse = world.login(nurse_account)
    mine = raise_request(world, nurse, child, "shielding").json()["id"]
    theirs = raise_request(world, manager(world), child, "shielding").json()["id"]
    decide(world, theirs, second_manager(world), decision="reject", note="No risk found")
    listed = world.client.get("/api/v1/requests", headers=nurse).json()
    assert [r["id"] for r in listed] == [mine]
    team = world.client.get(
        "/api/v1/requests", params={"status": "pending", "limit": 500}, headers=manager(world)
    ).json()
    assert mine in [r["id"] for r in team]
    assert theirs not in [r["id"] for r in team]
    rejected = world.client.get(
        "/api/v1/requests", params={"status": "rejected", "limit": 500}, headers=manager(world)
    ).json()
    assert theirs in [r["id"] for r in rejected]
    other_la = world.client.get("/api/v1/requests", headers=manager(world, LA_B)).json()
    assert {mine, theirs}.isdisjoint(r["id"] for r in other_la)


@pytest.mark.parametrize(
    ("kind", "extra", "status", "code"),
    [
        ("rectification", {}, 422, "invalid_request"),
        ("rectification", {"changes": {}}, 422, "invalid_request"),
        ("rectification", {"changes": {"archived_at": None}}, 422, "invalid_request"),
        ("shielding", {"changes": {"given_name": "A"}}, 422, "invalid_request"),
        ("unshielding", {}, 409, "nothing_to_change"),
    ],
)
def test_malformed_or_pointless_requests_are_refused(
    world: World, kind: str, extra: dict[str, Any], status: int, code: str
) -> None:
    child = world.child()
    response = raise_request(world, manager(world), child, kind, **extra)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_the_stored_request_is_encrypted(world: World) -> None:
    child = world.child()
    new_name = unique_name()
    raise_request(world, manager(world), child, "rectification", changes={"family_name": new_name})
    with world.ctx.sessions() as db:
        stored = db.scalars(select(ChangeRequest).where(ChangeRequest.child_id == child.id)).one()
    assert stored.proposed_enc is not None
    assert new_name.encode() not in stored.proposed_enc
    assert JUSTIFICATION.encode() not in stored.justification_enc


def test_two_concurrent_decisions_cannot_both_win(world: World) -> None:
    from reference_app.requests import repository
    from reference_app.requests.models import RequestStatus

    child = world.child()
    request_id = raise_request(world, manager(world), child, "shielding").json()["id"]
    decider = world.accounts[(Role.LA_DATA_MANAGER, LA_A)].id
    outcomes = []
    # Both deciders read the request as pending; the conditional update lets one through.
    for status in (RequestStatus.APPROVED, RequestStatus.REJECTED):
        with world.ctx.sessions() as db, db.begin():
            outcomes.append(
                repository.mark_decided(
                    db,
                    request_id,
                    status=status,
                    decided_by=decider,
                    decided_at=world.clock.now(),
                    note_enc=None,
                )
            )
    assert outcomes == [True, False]
