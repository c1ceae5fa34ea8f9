"""Creation, correction, shielding and recorded deaths by data managers; involvements by their
owners."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.children.models import Child
from reference_app.kit.controls import Control
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, LA_B, World, strict_world, unique_name

NEW_CHILD = {
    "given_name": "Ivy",
    "date_of_birth": "2019-05-04",
    "gender": "female",
    "address": {"line1": "3 Brook Lane", "town": "Preston", "postcode": "PR2 3ZZ"},
}


def manager(world: World, la: str = LA_A) -> dict[str, str]:
    return world.headers(Role.LA_DATA_MANAGER, la)


def reason(world: World, role: Role = Role.LA_DATA_MANAGER, la: str = LA_A) -> dict[str, str]:
    return {**world.headers(role, la), "X-Access-Reason": "service_delivery"}


def test_data_manager_creates_corrects_and_shields_a_child(world: World) -> None:
    family = unique_name()
    made = world.client.post(
        "/api/v1/children", json={**NEW_CHILD, "family_name": family}, headers=manager(world)
    )
    assert made.status_code == 201
    child_id = made.json()["child_id"]
    fix = world.client.patch(
        f"/api/v1/children/{child_id}",
        json={"given_name": "Ivie", "address": {**NEW_CHILD["address"], "postcode": "PR3 4ZZ"}},
        headers=manager(world),
    )
    assert fix.status_code == 200
    record = world.client.get(f"/api/v1/children/{child_id}", headers=reason(world)).json()
    assert record["given_name"] == "Ivie"
    assert record["address"]["postcode"] == "PR3 4ZZ"
    found = world.client.post(
        "/api/v1/children/search",
        json={"family_name": family, "postcode": "PR3 4ZZ"},
        headers=world.headers(Role.HEALTH_PRACTITIONER),
    )
    assert [r["child_id"] for r in found.json()["results"]] == [child_id]
    shield = world.client.post(
        f"/api/v1/children/{child_id}/shield",
        json={"shielded": True, "decision_note": "risk of harm"},
        headers=manager(world),
    )
    assert shield.status_code == 200
    hidden = world.client.post(
        "/api/v1/children/search",
        json={"family_name": family, "postcode": "PR3 4ZZ"},
        headers=world.headers(Role.HEALTH_PRACTITIONER),
    )
    assert hidden.json()["results"] == []
    with world.ctx.sessions() as db:
        tags = db.scalars(
            select(AuditEvent.tag).where(AuditEvent.child_id == child_id).order_by(AuditEvent.id)
        ).all()
    assert tags == ["child:created", "child:corrected", "child:record:viewed", "child:shielded"]


def test_a_recorded_death_closes_the_record_like_an_archive(world: World) -> None:
    child = world.child()
    world.involve(child, OrganisationKind.SCHOOL)
    path = f"/api/v1/children/{child.id}"
    by_name = {"family_name": child.family_name, "given_name": child.given_name}

    def view(role: Role, la: str = LA_A):
        return world.client.get(path, headers=reason(world, role, la))

    def search(role: Role, la: str = LA_A) -> list[str]:
        found = world.client.post(
            "/api/v1/children/search", json=by_name, headers=world.headers(role, la)
        )
        return [r["child_id"] for r in found.json()["results"]]

    def record_death(la: str = LA_A, deceased: bool = True):
        return world.client.patch(path, json={"deceased": deceased}, headers=manager(world, la))

    assert view(Role.EDUCATION_PRACTITIONER).json()["deceased"] is False
    assert record_death(deceased=False).status_code == 422  # recorded, never un-recorded here
    assert record_death(LA_B).json()["error"]["code"] == "child_not_found"
    assert record_death().status_code == 200
    with world.ctx.sessions() as db:
        first = db.get(Child, child.id)
        assert first is not None
        when = first.deceased_recorded_at
    assert when is not None
    # Recording it again changes nothing: the first record stands.
    world.clock.advance(5)
    assert (
        world.client.patch(path, json={"deceased": True}, headers=manager(world)).status_code == 200
    )

    # Hidden from everyone but the own LA's data managers, who see that the child has died.
    for role, la in ((Role.EDUCATION_PRACTITIONER, LA_A), (Role.LA_DATA_MANAGER, LA_B)):
        hidden = view(role, la)
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "child_not_found"
        assert search(role, la) == []
    own = view(Role.LA_DATA_MANAGER)
    assert own.status_code == 200
    assert (own.json()["deceased"], own.json()["archived"]) == (True, False)
    assert search(Role.LA_DATA_MANAGER) == [child.id]
    involvement = world.client.post(
        f"{path}/involvements", json={}, headers=world.headers(Role.HEALTH_PRACTITIONER)
    )
    assert involvement.status_code == 404

    with world.ctx.sessions() as db:
        stored = db.get(Child, child.id)
        assert stored is not None
        assert stored.deceased_recorded_at == when
        events = db.scalars(
            select(AuditEvent).where(
                AuditEvent.child_id == child.id, AuditEvent.tag == "child:deceased:recorded"
            )
        ).all()
    assert [(e.actor_id, e.details) for e in events] == [
        (world.accounts[(Role.LA_DATA_MANAGER, LA_A)].id, "{}")
    ]


def test_a_death_and_a_correction_in_one_request(world: World) -> None:
    child = world.child()
    response = world.client.patch(
        f"/api/v1/children/{child.id}",
        json={"given_name": "Iris", "deceased": True},
        headers=manager(world),
    )
    assert response.status_code == 200
    record = world.client.get(f"/api/v1/children/{child.id}", headers=reason(world)).json()
    assert (record["given_name"], record["deceased"]) == ("Iris", True)
    with world.ctx.sessions() as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.child_id == child.id).order_by(AuditEvent.id)
        ).all()
    assert [e.tag for e in events][:2] == ["child:deceased:recorded", "child:corrected"]
    assert events[1].details == '{"fields":["given_name"]}'


@pytest.mark.parametrize(
    "role",
    [
        Role.EDUCATION_PRACTITIONER,
        Role.SOCIAL_CARE_PRACTITIONER,
        Role.NATIONAL_AUDITOR,
        Role.SYSTEM_ADMINISTRATOR,
    ],
)
def test_only_data_managers_create_correct_or_shield(world: World, role: Role) -> None:
    child = world.child()
    headers = world.headers(role)
    for method, path, body in (
        ("POST", "/api/v1/children", {**NEW_CHILD, "family_name": "X"}),
        ("PATCH", f"/api/v1/children/{child.id}", {"given_name": "Y"}),
        ("PATCH", f"/api/v1/children/{child.id}", {"deceased": True}),
        ("POST", f"/api/v1/children/{child.id}/shield", {"shielded": True}),
        (
            "POST",
            f"/api/v1/children/{child.id}/carers",
            {"given_name": "A", "family_name": "B", "relationship": "mother"},
        ),
    ):
        response = world.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "permission_denied"


def test_another_las_child_is_not_found_for_writes(world: World) -> None:
    child = world.child(LA_B)
    response = world.client.patch(
        f"/api/v1/children/{child.id}", json={"given_name": "Z"}, headers=manager(world)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "child_not_found"


@pytest.mark.parametrize(
    "field",
    [{"shielded": True}, {"local_authority_id": 2}, {"id": "0000000000000"}, {"archived_at": None}],
)
def test_mass_assignment_is_refused(world: World, field: dict) -> None:
    child = world.child()
    response = world.client.patch(
        f"/api/v1/children/{child.id}", json={"given_name": "Q", **field}, headers=manager(world)
    )
    assert response.status_code == 422
    created = world.client.post(
        "/api/v1/children", json={**NEW_CHILD, "family_name": "Q", **field}, headers=manager(world)
    )
    assert created.status_code == 422


def test_carers_are_added_and_corrected_by_the_owning_la(world: World) -> None:
    child = world.child()
    added = world.client.post(
        f"/api/v1/children/{child.id}/carers",
        json={
            "given_name": "Dana",
            "family_name": child.family_name,
            "relationship": "guardian",
            "parental_responsibility": True,
            "phone": "07700 900123",
            "email": "dana@example.com",
        },
        headers=manager(world),
    )
    assert added.status_code == 201
    carer_id = added.json()["carer_id"]
    fixed = world.client.patch(
        f"/api/v1/carers/{carer_id}", json={"phone": "07700 900124"}, headers=manager(world)
    )
    assert fixed.status_code == 200
    other = world.client.patch(
        f"/api/v1/carers/{carer_id}", json={"phone": "07700 900125"}, headers=manager(world, LA_B)
    )
    assert other.status_code == 404
    record = world.client.get(f"/api/v1/children/{child.id}", headers=reason(world)).json()
    assert {"relationship": "guardian", "phone": "07700 900124"}.items() <= next(
        c for c in record["carers"] if c["carer_id"] == carer_id
    ).items()


def test_involvements_belong_to_the_practitioner_who_registers_them(world: World) -> None:
    child = world.child(LA_B)
    owner = world.new_account(Role.HEALTH_PRACTITIONER)
    owner_headers = world.login(owner)
    made = world.client.post(
        f"/api/v1/children/{child.id}/involvements",
        json={"lead_professional": True},
        headers=owner_headers,
    )
    assert made.status_code == 201
    involvement = made.json()["id"]
    assert made.json()["confirmed"] is False
    # A claim alone widens nothing; once the child's LA confirms it, the owner sees the full
    # record of this other-LA child (recently involved, for the insider-browsing detector).
    confirmed = world.client.post(
        f"/api/v1/involvements/{involvement}/confirm", headers=manager(world, LA_B)
    )
    assert confirmed.status_code == 200
    view = world.client.get(
        f"/api/v1/children/{child.id}",
        headers={**owner_headers, "X-Access-Reason": "service_delivery"},
    )
    assert view.json()["access"]["relationship"] == "involved_recent"
    assert view.json()["access"]["level"] == "full"
    other = world.headers(Role.EDUCATION_PRACTITIONER)
    denied = world.client.patch(
        f"/api/v1/involvements/{involvement}",
        json={"caf_assessment_on": "2026-02-01"},
        headers=other,
    )
    # Someone else's involvement answers as a missing one (uniform_refusals).
    assert denied.status_code == 404
    assert denied.json()["error"]["code"] == "involvement_not_found"
    caf = world.client.patch(
        f"/api/v1/involvements/{involvement}",
        json={"caf_assessment_on": "2026-02-01"},
        headers=owner_headers,
    )
    assert caf.json()["caf_assessment_on"] == "2026-02-01"
    ended = world.client.post(
        f"/api/v1/involvements/{involvement}/end", json={}, headers=owner_headers
    )
    assert ended.status_code == 200
    assert ended.json()["lead_professional"] is False
    again = world.client.post(
        f"/api/v1/involvements/{involvement}/end", json={}, headers=owner_headers
    )
    assert again.status_code == 409


def _someone_elses_involvement(world: World) -> int:
    child = world.child(LA_A)
    owner_headers = world.login(world.new_account(Role.HEALTH_PRACTITIONER))
    made = world.client.post(
        f"/api/v1/children/{child.id}/involvements", json={}, headers=owner_headers
    )
    assert made.status_code == 201
    return int(made.json()["id"])


def _change_involvement(world: World, involvement_id: int, headers: dict) -> tuple:
    answer = world.client.patch(
        f"/api/v1/involvements/{involvement_id}",
        json={"lead_professional": True},
        headers=headers,
    )
    error = answer.json()["error"]
    return answer.status_code, error["code"], error["message"]


def test_someone_elses_involvement_answers_like_a_missing_one(world: World) -> None:
    """No oracle: a 403 for an existing id and a 404 for a missing one would tell ids apart."""
    involvement = _someone_elses_involvement(world)
    other = world.headers(Role.SOCIAL_CARE_PRACTITIONER)
    theirs = _change_involvement(world, involvement, other)
    missing = _change_involvement(world, 2_000_000_000 + involvement, other)
    assert theirs == missing
    assert theirs[:2] == (404, "involvement_not_found")


def test_with_uniform_refusals_off_someone_elses_involvement_is_forbidden(world: World) -> None:
    """On: test_someone_elses_involvement_answers_like_a_missing_one."""
    with strict_world(world, off=[Control.UNIFORM_REFUSALS], limits_scale=100) as w:
        involvement = _someone_elses_involvement(w)
        other = w.login(w.new_account(Role.SOCIAL_CARE_PRACTITIONER))
        theirs = _change_involvement(w, involvement, other)
        missing = _change_involvement(w, 2_000_000_000 + involvement, other)
    assert theirs[:2] == (403, "not_involvement_owner")
    assert missing[:2] == (404, "involvement_not_found")


def test_sensitive_service_involvement_needs_consent(world: World) -> None:
    from reference_app.services.models import OrganisationKind

    child = world.child()
    nurse = world.login(
        world.new_account(Role.HEALTH_PRACTITIONER, kind=OrganisationKind.SEXUAL_HEALTH_SERVICE)
    )
    refused = world.client.post(f"/api/v1/children/{child.id}/involvements", json={}, headers=nurse)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "consent_required"
    ok = world.client.post(
        f"/api/v1/children/{child.id}/involvements", json={"consent_recorded": True}, headers=nurse
    )
    assert ok.status_code == 201
    assert ok.json()["sensitive"] is True


def test_audit_events_are_readable_by_auditors_and_own_la(world: World) -> None:
    child = world.child(LA_B)
    world.client.get(
        f"/api/v1/children/{child.id}",
        headers={
            **world.headers(Role.EDUCATION_PRACTITIONER),
            "X-Access-Reason": "contact_practitioner",
        },
    )
    auditor = world.client.get(
        "/api/v1/audit/events",
        params={"child_id": child.id},
        headers=world.headers(Role.NATIONAL_AUDITOR),
    )
    [event] = auditor.json()
    assert (event["tag"], event["reason_code"]) == ("child:record:viewed", "contact_practitioner")
    own = world.client.get(
        "/api/v1/audit/events", params={"child_id": child.id}, headers=manager(world, LA_B)
    )
    # The child's own LA sees who looked, including the auditor's own look at the trail.
    assert [e["tag"] for e in own.json()] == ["audit:events:read", "child:record:viewed"]
    practitioner = world.client.get(
        "/api/v1/audit/events", headers=world.headers(Role.EDUCATION_PRACTITIONER)
    )
    assert practitioner.status_code == 403
