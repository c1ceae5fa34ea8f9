"""The subject access pack: the data held, who looked (organisation, role, reason, never the
practitioner), requests about the child; JSON and a printable page; only the child's LA."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, LA_B, World

STAFF_KEYS = {"practitioner_id", "actor_id", "username", "display_name", "decided_by", "raised_by"}


def pack(world: World, child_id: str, la: str = LA_A, **params: str) -> Any:
    return world.client.get(
        f"/api/v1/subject-access/{child_id}",
        params=params,
        headers=world.headers(Role.LA_DATA_MANAGER, la),
    )


def look(world: World, child_id: str, role: Role, la: str, reason: str) -> dict[str, Any]:
    headers = {**world.headers(role, la), "X-Access-Reason": reason}
    response = world.client.get(f"/api/v1/children/{child_id}", headers=headers)
    assert response.status_code == 200
    return dict(response.json())


def keys_in(document: Any) -> set[str]:
    if isinstance(document, dict):
        return set(document) | {k for v in document.values() for k in keys_in(v)}
    if isinstance(document, list):
        return {k for v in document for k in keys_in(v)}
    return set()


def test_the_pack_holds_the_record_and_who_looked_without_naming_staff(world: World) -> None:
    child = world.child()
    nurse = world.accounts[(Role.HEALTH_PRACTITIONER, LA_A)]
    world.involve(child, OrganisationKind.GP_PRACTICE, practitioner=nurse)
    # A sensitive service without consent: hidden from every other viewer, held all the same.
    world.involve(child, OrganisationKind.SEXUAL_HEALTH_SERVICE)
    look(world, child.id, Role.EDUCATION_PRACTITIONER, LA_A, "service_delivery")
    look(world, child.id, Role.POLICE_PRACTITIONER, LA_B, "safeguarding; a note naming someone")
    record = look(world, child.id, Role.LA_DATA_MANAGER, LA_A, "service_delivery")

    response = pack(world, child.id)
    assert response.status_code == 200
    body = response.json()
    held = body["data_held"]

    # The data held is the record as the registry holds it.
    record.pop("access")
    assert {k: v for k, v in held.items() if k != "services"} == {
        k: v for k, v in record.items() if k != "services"
    }
    [gp] = record["services"]
    assert gp["practitioner_id"] == nurse.id
    gp_held = next(s for s in held["services"] if s["involvement_id"] == gp["involvement_id"])
    assert gp_held == {
        **{k: v for k, v in gp.items() if k != "practitioner_id"},
        "consent_recorded": False,
    }
    assert [s["organisation"]["kind"] for s in held["services"]] == [
        "gp_practice",
        "sexual_health_service",
    ]
    assert held["carers"][0]["phone"] == child.carers[0]["phone"]

    # Who looked: when, organisation and kind, role, reason; the pack's own production last.
    history = body["access_history"]
    views = [e for e in history if e["action"] == "child:record:viewed"]
    assert [(v["organisation"]["kind"], v["role"], v["reason"]) for v in views] == [
        ("school", "education_practitioner", "service_delivery"),
        ("police", "police_practitioner", "safeguarding"),
        ("la_management_team", "la_data_manager", "service_delivery"),
    ]
    assert views[1]["organisation"]["name"] == "Manchester police"
    assert views[1]["level"] == "limited"
    assert views[0]["relationship"] == "self_claimed"
    assert all(v["outcome"] == "allowed" and v["occurred_at"] for v in views)
    assert history[-1]["action"] == "subject_access:produced"
    assert history[-1]["format"] == "json"

    # Never the practitioner: no staff ids or names, no free-text reasons.
    assert not keys_in(body) & STAFF_KEYS
    for account in world.accounts.values():
        assert account.username not in response.text
    assert "Test User" not in response.text
    assert "naming someone" not in response.text
    assert "reason_text" not in response.text


def test_searches_that_showed_the_child_are_listed_and_others_are_not(world: World) -> None:
    child = world.child()
    other = world.child(family_name=child.family_name, given_name="Zelda")
    searcher = world.headers(Role.YOUTH_OFFENDING_PRACTITIONER, LA_B)
    found = world.client.post(
        "/api/v1/children/search",
        json={"family_name": child.family_name, "given_name": child.given_name},
        headers=searcher,
    )
    assert [r["child_id"] for r in found.json()["results"]] == [child.id]
    world.client.post(
        "/api/v1/children/search",
        json={"family_name": child.family_name, "given_name": "Zelda"},
        headers=searcher,
    )
    history = pack(world, child.id).json()["access_history"]
    searches = [e for e in history if e["action"] == "child:search:performed"]
    assert len(searches) == 1
    assert searches[0]["organisation"]["kind"] == "youth_offending_team"
    assert searches[0]["role"] == "youth_offending_practitioner"
    assert "search showed the child" in searches[0]["description"]
    other_history = pack(world, other.id).json()["access_history"]
    assert len([e for e in other_history if e["action"] == "child:search:performed"]) == 1


def test_producing_the_pack_is_audited(world: World) -> None:
    child = world.child()
    assert pack(world, child.id, format="html").status_code == 200
    with world.ctx.sessions() as db:
        event = db.scalars(
            select(AuditEvent).where(
                AuditEvent.child_id == child.id, AuditEvent.tag == "subject_access:produced"
            )
        ).one()
    assert event.actor_id == world.accounts[(Role.LA_DATA_MANAGER, LA_A)].id
    assert event.details == '{"format":"html"}'


def test_the_printable_page_escapes_every_value_and_keeps_the_security_headers(
    world: World,
) -> None:
    child = world.child(given_name="<script>alert(1)</script>")
    look(world, child.id, Role.SOCIAL_CARE_PRACTITIONER, LA_A, "safeguarding")
    response = pack(world, child.id, format="html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert child.family_name in page
    assert "Lancashire childrens_social_care (childrens_social_care)" in page
    assert "safeguarding" in page
    # One policy, as strict as the default, allowing only this page's own stylesheet.
    [policy] = response.headers.get_list("content-security-policy")
    [style] = re.findall(r"<style>(.*?)</style>", page, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy.startswith("default-src 'none';")
    assert f"style-src 'sha256-{digest}'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "@media print" in style


def test_accept_text_html_gives_the_page_and_other_answers_keep_the_default_policy(
    world: World,
) -> None:
    child = world.child()
    headers = {**world.headers(Role.LA_DATA_MANAGER), "Accept": "text/html,*/*;q=0.8"}
    page = world.client.get(f"/api/v1/subject-access/{child.id}", headers=headers)
    assert page.headers["content-type"].startswith("text/html")
    as_json = pack(world, child.id)
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers.get_list("content-security-policy") == [
        "default-src 'none'; frame-ancestors 'none'"
    ]
    assert pack(world, child.id, format="pdf").status_code == 422


@pytest.mark.parametrize(
    "role",
    [
        Role.EDUCATION_PRACTITIONER,
        Role.SOCIAL_CARE_PRACTITIONER,
        Role.POLICE_PRACTITIONER,
        Role.NATIONAL_AUDITOR,
        Role.SYSTEM_ADMINISTRATOR,
    ],
)
def test_only_la_data_managers_produce_a_pack(world: World, role: Role) -> None:
    child = world.child()
    response = world.client.get(
        f"/api/v1/subject-access/{child.id}", headers=world.headers(role, LA_A)
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_another_las_child_is_not_found_and_nothing_is_produced(world: World) -> None:
    child = world.child(LA_A)
    response = pack(world, child.id, la=LA_B)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "child_not_found"
    assert child.family_name not in response.text
    with world.ctx.sessions() as db:
        produced = db.scalars(
            select(AuditEvent.id).where(
                AuditEvent.child_id == child.id, AuditEvent.tag == "subject_access:produced"
            )
        ).all()
    assert produced == []


def test_the_pack_includes_the_decision_trail_of_requests(world: World) -> None:
    child = world.child()
    raiser = world.headers(Role.EDUCATION_PRACTITIONER)
    raised = world.client.post(
        "/api/v1/requests",
        json={
            "child_id": child.id,
            "kind": "rectification",
            "changes": {"given_name": "Evie"},
            "justification": "Mother says the name was misspelt at registration",
        },
        headers=raiser,
    )
    assert raised.status_code == 201
    world.client.post(
        f"/api/v1/requests/{raised.json()['id']}/decision",
        json={"decision": "reject", "note": "Birth certificate shows the registered spelling"},
        headers=world.headers(Role.LA_DATA_MANAGER),
    )
    body = pack(world, child.id).json()
    [trail] = body["requests"]
    assert trail["kind"] == "rectification"
    assert trail["status"] == "rejected"
    assert trail["proposed_changes"] == {"given_name": "Evie"}
    assert trail["justification"] == "Mother says the name was misspelt at registration"
    assert trail["decided"]["note"] == "Birth certificate shows the registered spelling"
    assert trail["raised"]["by"] == {
        "role": "education_practitioner",
        "organisation": {"name": "Lancashire school", "kind": "school"},
    }
    actions = [e["action"] for e in body["access_history"]]
    assert actions[-3:] == ["request:raised", "request:rejected", "subject_access:produced"]
    page = pack(world, child.id, format="html").text
    assert "Birth certificate shows the registered spelling" in page
