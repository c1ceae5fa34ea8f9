"""Reasons for access, identifiers, override, archive and sensitive services on record views."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, LA_B, World


def view(
    world: World,
    child_id: str,
    role: Role = Role.EDUCATION_PRACTITIONER,
    reason: str | None = "service_delivery",
    la: str = LA_A,
):
    headers = dict(world.headers(role, la))
    if reason is not None:
        headers["X-Access-Reason"] = reason
    return world.client.get(f"/api/v1/children/{child_id}", headers=headers)


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (None, "access_reason_required"),
        ("", "access_reason_required"),
        ("curiosity", "invalid_access_reason"),
    ],
)
def test_a_view_needs_a_known_reason(world: World, reason: str | None, code: str) -> None:
    child = world.child()
    response = view(world, child.id, reason=reason)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_reason_free_text_is_kept_encrypted_in_the_trail(world: World) -> None:
    child = world.child()
    response = view(world, child.id, reason="safeguarding; concern raised by Mrs Hollowbrook")
    assert response.status_code == 200
    with world.ctx.sessions() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.child_id == child.id)).one()
    assert "Hollowbrook" not in event.details
    assert "reason_text_enc" in event.details


def test_a_mistyped_identifier_is_refused_before_any_lookup(world: World) -> None:
    child = world.child()
    typo = child.id[:-2] + ("0" if child.id[-2] != "0" else "1") + child.id[-1]
    response = view(world, typo)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_child_id"


def test_an_unknown_identifier_is_not_found(world: World) -> None:
    from reference_app.kit.identifiers import new_child_id

    response = view(world, new_child_id())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "child_not_found"


@pytest.mark.parametrize("role", [Role.SOCIAL_CARE_PRACTITIONER, Role.POLICE_PRACTITIONER])
def test_override_shows_hidden_data_warns_audits_and_alerts(world: World, role: Role) -> None:
    child = world.child(LA_B, shielded=True)
    response = view(world, child.id, role=role, reason="emergency_override")
    assert response.status_code == 200
    body = response.json()
    assert body["address"] == child.address
    assert body["access"]["relationship"] == "override"
    assert "investigation" in body["access"]["warning"]
    with world.ctx.sessions() as db:
        tags = db.scalars(
            select(AuditEvent.tag).where(AuditEvent.child_id == child.id).order_by(AuditEvent.id)
        ).all()
    assert tags == ["child:record:override", "alert:raised"]
    # The alert goes to the management team of the child's LA, with a reference only.
    alerts = world.client.get("/api/v1/alerts", headers=world.headers(Role.LA_DATA_MANAGER, LA_B))
    [alert] = [a for a in alerts.json() if a["child_id"] == child.id]
    assert alert["kind"] == "override"
    assert alert["subject_user_id"] == world.accounts[(role, LA_A)].id
    assert child.family_name not in str(alert)
    # The practitioner's employing LA sees it too (it answers for its staff), as the same alert.
    own = world.client.get("/api/v1/alerts", headers=world.headers(Role.LA_DATA_MANAGER, LA_A))
    assert [a["id"] for a in own.json() if a["child_id"] == child.id] == [alert["id"]]


@pytest.mark.parametrize(
    "role",
    [
        Role.EDUCATION_PRACTITIONER,
        Role.HEALTH_PRACTITIONER,
        Role.VOLUNTARY_PRACTITIONER,
        Role.LA_DATA_MANAGER,
    ],
)
def test_override_is_refused_to_roles_without_it(world: World, role: Role) -> None:
    child = world.child(shielded=True)
    response = view(world, child.id, role=role, reason="emergency_override")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "override_not_permitted"
    with world.ctx.sessions() as db:
        denial = db.scalars(select(AuditEvent).where(AuditEvent.child_id == child.id)).one()
    assert denial.tag == "access:denied"


def test_archived_records_are_for_the_owning_data_managers_only(world: World) -> None:
    child = world.child(archived=True)
    assert view(world, child.id).status_code == 404
    assert view(world, child.id, role=Role.LA_DATA_MANAGER, la=LA_B).status_code == 404
    own = view(world, child.id, role=Role.LA_DATA_MANAGER)
    assert own.status_code == 200
    assert own.json()["archived"] is True
    search = {"family_name": child.family_name, "given_name": child.given_name}
    practitioner = world.client.post(
        "/api/v1/children/search", json=search, headers=world.headers(Role.EDUCATION_PRACTITIONER)
    )
    assert practitioner.json()["results"] == []


def test_sensitive_services_need_consent_or_membership(world: World) -> None:
    child = world.child()
    world.involve(child, OrganisationKind.GP_PRACTICE)
    hidden = world.involve(child, OrganisationKind.SEXUAL_HEALTH_SERVICE, consent=False)
    body = view(world, child.id).json()
    assert [s["organisation"]["kind"] for s in body["services"]] == ["gp_practice"]
    # The service itself sees its own involvement.
    member = world.new_account(
        Role.HEALTH_PRACTITIONER, kind=OrganisationKind.SEXUAL_HEALTH_SERVICE
    )
    own = world.client.get(
        f"/api/v1/children/{child.id}",
        headers={**world.login(member), "X-Access-Reason": "service_delivery"},
    )
    assert hidden in [s["involvement_id"] for s in own.json()["services"]]
    # With consent recorded, others see it too.
    other = world.child()
    shared = world.involve(other, OrganisationKind.SEXUAL_HEALTH_SERVICE, consent=True)
    assert shared in [s["involvement_id"] for s in view(world, other.id).json()["services"]]


def test_warning_flag_shows_social_care_involvement(world: World) -> None:
    child = world.child()
    world.involve(child, OrganisationKind.CHILDRENS_SOCIAL_CARE)
    assert view(world, child.id).json()["warning_flags"] == ["social_care_involved"]
    ended = world.child()
    world.involve(ended, OrganisationKind.CHILDRENS_SOCIAL_CARE, ended=True)
    assert view(world, ended.id).json()["warning_flags"] == []


def test_ended_involvement_no_longer_counts_as_involved(world: World) -> None:
    child = world.child(LA_B)
    world.involve(child, OrganisationKind.SCHOOL, la=LA_A, ended=True)
    assert view(world, child.id).json()["access"] == {
        "relationship": "self_claimed",
        "level": "limited",
        "reason": "service_delivery",
        "warning": None,
    }


def test_view_audit_records_the_fields_shown(world: World) -> None:
    child = world.child(LA_B)
    view(world, child.id)
    with world.ctx.sessions() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.child_id == child.id)).one()
    details = json.loads(event.details)
    assert details["level"] == "limited"
    assert details["fields"] == [
        "age",
        "child_id",
        "contact",
        "family_name",
        "gender",
        "given_name",
        "local_authority",
        "shielded",
    ]
    assert child.given_name not in event.details


def test_an_override_shows_the_record_only_while_it_is_open(world: World) -> None:
    """Break-glass opens one view: the next look without it is the ordinary limited view."""
    child = world.child(LA_B, shielded=True)
    opened = view(world, child.id, role=Role.POLICE_PRACTITIONER, reason="emergency_override")
    assert "address" in opened.json()
    assert opened.headers["cache-control"] == "no-store"  # nothing kept after it closes
    again = view(world, child.id, role=Role.POLICE_PRACTITIONER, reason="safeguarding")
    assert again.status_code == 200
    assert "address" not in again.json()
    assert again.json()["access"]["level"] == "limited"


def test_with_override_alerts_switched_off_break_glass_goes_unreported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reference_app.config import Environment
    from reference_app.kit.controls import Control

    weakened = world.ctx.settings.model_copy(
        update={
            "environment": Environment.DEVELOPMENT,
            "disabled_controls": frozenset({Control.OVERRIDE_ALERTS}),
        }
    )
    monkeypatch.setattr(world.ctx, "settings", weakened)
    child = world.child(LA_B, shielded=True)
    opened = view(world, child.id, role=Role.SOCIAL_CARE_PRACTITIONER, reason="emergency_override")
    assert opened.status_code == 200
    alerts = world.client.get("/api/v1/alerts", headers=world.headers(Role.LA_DATA_MANAGER, LA_B))
    assert child.id not in str(alerts.json())
