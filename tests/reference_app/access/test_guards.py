"""Route guards with function-level authorization switched off (a development build): any
signed-in caller passes every permission guard, and nothing downstream breaks on a role it was
never meant to serve. (That each guard works when on: the role matrix, and each context's
"only ... may" tests, e.g. test_login.test_only_system_administrators_manage_accounts.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.alerts.models import Alert
from reference_app.api import route_table
from reference_app.carers.models import ChildCarer
from reference_app.kit.controls import Control
from reference_app.services.models import OrganisationKind
from tests.fixtures.exports import recipient, request_body
from tests.fixtures.world import LA_A, Account, World, strict_world, unique_name

NEW_CHILD = {
    "given_name": "Ivy",
    "family_name": "Quillfeather",
    "date_of_birth": "2019-05-04",
    "gender": "female",
    "address": {"line1": "3 Brook Lane", "town": "Preston", "postcode": "PR2 3ZZ"},
}


def _behind_a_permission(route: APIRoute) -> bool:
    def walk(dependant: Any) -> bool:
        return any(
            getattr(sub.call, "__name__", "") == "guard" or walk(sub)
            for sub in dependant.dependencies
        )

    return walk(route.dependant)


PERMISSION_ROUTES = {
    (method, path)
    for path, route in route_table()
    if _behind_a_permission(route)
    for method in route.methods
}


@pytest.fixture
def weakened(world: World) -> Iterator[World]:
    with strict_world(world, off=[Control.FUNCTION_AUTHORIZATION], limits_scale=100) as w:
        yield w


def test_any_caller_passes_every_guard(weakened: World) -> None:
    """On: test_login.test_only_system_administrators_manage_accounts,
    test_role_matrix.test_view (no child data for auditors and administrators),
    test_workflow.test_no_other_role_reaches_any_export_route."""
    w = weakened
    practitioner = w.login(w.new_account(Role.VOLUNTARY_PRACTITIONER))
    admin = w.login(w.new_account(Role.SYSTEM_ADMINISTRATOR))
    auditor = w.login(w.new_account(Role.NATIONAL_AUDITOR))
    made = w.client.post(
        "/api/v1/users",
        json={
            "username": f"made.{unique_name().lower()}",
            "display_name": "Made By A Volunteer",
            "role": "la_data_manager",
            "organisation_id": w.orgs[(LA_A, OrganisationKind.LA_MANAGEMENT_TEAM)],
        },
        headers=practitioner,
    )
    assert made.status_code == 201, made.text
    export = w.client.post(
        "/api/v1/exports", json=request_body(None, recipient()), headers=practitioner
    )
    assert export.status_code == 201, export.text
    child = w.child(LA_A)
    read = w.client.get(
        f"/api/v1/children/{child.id}", headers={**admin, "X-Access-Reason": "safeguarding"}
    )
    assert read.status_code == 200, read.text
    # Need-to-know is still on: an administrator, having none, gets the limited view.
    assert read.json()["access"]["level"] == "limited"
    by_name = {"family_name": child.family_name, "given_name": child.given_name}
    searched = w.client.post("/api/v1/children/search", json=by_name, headers=auditor)
    assert [r["child_id"] for r in searched.json()["results"]] == [child.id]


def _calls(w: World, caller: Account) -> dict[tuple[str, str], Callable[[dict[str, str]], Any]]:
    """One plausible request per permission-guarded route, on objects of the caller's LA (an
    involvement of the caller's own, an alert about another user)."""
    child = w.child(LA_A)
    with w.ctx.sessions() as db:
        carer_id = db.scalar(select(ChildCarer.carer_id).where(ChildCarer.child_id == child.id))
    involvement = w.involve(child, OrganisationKind.SCHOOL, practitioner=caller)
    subject = w.new_account(Role.HEALTH_PRACTITIONER)
    with w.ctx.sessions() as db, db.begin():
        alert = Alert(
            created_at=datetime.now(UTC),
            kind="harvesting",
            severity="high",
            status="open",
            subject_user_id=subject.id,
            local_authority_id=w.la_ids[LA_A],
            child_id=child.id,
            audit_event_id=None,
            summary="A test alert",
            details="{}",
        )
        db.add(alert)
        db.flush()
        alert_id = alert.id
    state: dict[str, Any] = {"export": 0, "request": 0}
    reason = {"X-Access-Reason": "safeguarding"}
    c = w.client

    def keep(key: str, response: Any) -> Any:
        if response.status_code == 201:
            state[key] = response.json()["id"]
        return response

    return {
        ("POST", "/api/v1/users"): lambda h: c.post(
            "/api/v1/users",
            json={
                "username": f"u.{unique_name().lower()}",
                "display_name": "New User",
                "role": "voluntary_practitioner",
                "organisation_id": w.orgs[(LA_A, OrganisationKind.VOLUNTARY_ORGANISATION)],
            },
            headers=h,
        ),
        ("PATCH", "/api/v1/users/{practitioner_id}"): lambda h: c.patch(
            f"/api/v1/users/{w.new_account(Role.HEALTH_PRACTITIONER).id}",
            json={"role": "education_practitioner"},
            headers=h,
        ),
        ("POST", "/api/v1/users/{practitioner_id}/confirm-role"): lambda h: c.post(
            f"/api/v1/users/{w.new_account(Role.HEALTH_PRACTITIONER).id}/confirm-role", headers=h
        ),
        ("POST", "/api/v1/children/search"): lambda h: c.post(
            "/api/v1/children/search",
            json={"family_name": child.family_name, "given_name": child.given_name},
            headers=h,
        ),
        ("GET", "/api/v1/children/{child_id}"): lambda h: c.get(
            f"/api/v1/children/{child.id}", headers={**h, **reason}
        ),
        ("POST", "/api/v1/children"): lambda h: c.post(
            "/api/v1/children", json=NEW_CHILD, headers=h
        ),
        ("PATCH", "/api/v1/children/{child_id}"): lambda h: c.patch(
            f"/api/v1/children/{child.id}", json={"given_name": "Iris"}, headers=h
        ),
        ("POST", "/api/v1/children/{child_id}/shield"): lambda h: c.post(
            f"/api/v1/children/{child.id}/shield", json={"shielded": False}, headers=h
        ),
        ("POST", "/api/v1/children/{child_id}/unshield/approve"): lambda h: c.post(
            f"/api/v1/children/{child.id}/unshield/approve", json={}, headers=h
        ),
        ("POST", "/api/v1/children/{child_id}/carers"): lambda h: c.post(
            f"/api/v1/children/{child.id}/carers",
            json={"given_name": "Ann", "family_name": "Bee", "relationship": "grandparent"},
            headers=h,
        ),
        ("POST", "/api/v1/children/{child_id}/carers/{carer_id}"): lambda h: c.post(
            f"/api/v1/children/{child.id}/carers/{carer_id}",
            json={"relationship": "father"},
            headers=h,
        ),
        ("PATCH", "/api/v1/carers/{carer_id}"): lambda h: c.patch(
            f"/api/v1/carers/{carer_id}", json={"phone": "07700 900123"}, headers=h
        ),
        ("POST", "/api/v1/children/{child_id}/involvements"): lambda h: c.post(
            f"/api/v1/children/{child.id}/involvements", json={}, headers=h
        ),
        ("PATCH", "/api/v1/involvements/{involvement_id}"): lambda h: c.patch(
            f"/api/v1/involvements/{involvement}", json={"lead_professional": True}, headers=h
        ),
        ("POST", "/api/v1/involvements/{involvement_id}/end"): lambda h: c.post(
            f"/api/v1/involvements/{involvement}/end", json={}, headers=h
        ),
        ("POST", "/api/v1/involvements/{involvement_id}/withdraw-consent"): lambda h: c.post(
            f"/api/v1/involvements/{involvement}/withdraw-consent", headers=h
        ),
        **{
            ("POST", f"/api/v1/involvements/{{involvement_id}}/{step}"): (
                lambda h, step=step: c.post(f"/api/v1/involvements/{involvement}/{step}", headers=h)
            )
            for step in ("confirm", "reject")
        },
        ("GET", "/api/v1/alerts"): lambda h: c.get("/api/v1/alerts", headers=h),
        ("GET", "/api/v1/alerts/{alert_id}"): lambda h: c.get(
            f"/api/v1/alerts/{alert_id}", headers=h
        ),
        **{
            ("POST", f"/api/v1/alerts/{{alert_id}}/{step}"): (
                lambda h, step=step: c.post(f"/api/v1/alerts/{alert_id}/{step}", json={}, headers=h)
            )
            for step in (
                "acknowledge",
                "investigate",
                "suspend-subject",
                "reinstate-subject",
                "close",
            )
        },
        ("GET", "/api/v1/audit/events"): lambda h: c.get("/api/v1/audit/events", headers=h),
        ("GET", "/api/v1/audit/checkpoints/latest"): lambda h: c.get(
            "/api/v1/audit/checkpoints/latest", headers=h
        ),
        ("POST", "/api/v1/exports"): lambda h: keep(
            "export", c.post("/api/v1/exports", json=request_body(None, recipient()), headers=h)
        ),
        ("GET", "/api/v1/exports"): lambda h: c.get("/api/v1/exports", headers=h),
        ("GET", "/api/v1/exports/{export_id}"): lambda h: c.get(
            f"/api/v1/exports/{state['export']}", headers=h
        ),
        ("POST", "/api/v1/exports/{export_id}/approve"): lambda h: c.post(
            f"/api/v1/exports/{state['export']}/approve", headers=h
        ),
        ("POST", "/api/v1/exports/{export_id}/link"): lambda h: c.post(
            f"/api/v1/exports/{state['export']}/link", headers=h
        ),
        ("POST", "/api/v1/exports/{export_id}/refuse"): lambda h: c.post(
            f"/api/v1/exports/{state['export']}/refuse", headers=h
        ),
        ("GET", "/api/v1/exports/download/{token}"): lambda h: c.get(
            "/api/v1/exports/download/not-a-token", headers=h
        ),
        ("GET", "/api/v1/subject-access/{child_id}"): lambda h: c.get(
            f"/api/v1/subject-access/{child.id}", headers=h
        ),
        ("POST", "/api/v1/requests"): lambda h: keep(
            "request",
            c.post(
                "/api/v1/requests",
                json={"child_id": child.id, "kind": "shielding", "justification": "At risk"},
                headers=h,
            ),
        ),
        ("GET", "/api/v1/requests"): lambda h: c.get("/api/v1/requests", headers=h),
        ("GET", "/api/v1/requests/{request_id}"): lambda h: c.get(
            f"/api/v1/requests/{state['request']}", headers=h
        ),
        ("POST", "/api/v1/requests/{request_id}/decision"): lambda h: c.post(
            f"/api/v1/requests/{state['request']}/decision",
            json={"decision": "reject", "note": "Not needed"},
            headers=h,
        ),
    }


@pytest.mark.parametrize("role", list(Role))
def test_no_route_breaks_for_a_role_it_does_not_serve(weakened: World, role: Role) -> None:
    """Every permission-guarded route, called by ``role`` without the permission: a 2xx or a
    clean 4xx, never a 500 and never the guard's refusal."""
    w = weakened
    caller = w.new_account(role)
    headers = w.login(caller)
    calls = _calls(w, caller)
    assert set(calls) == PERMISSION_ROUTES
    # In the order of a workflow: what one call makes, the next one uses.
    for (method, path), call in calls.items():
        response = call(headers)
        assert response.status_code < 500, (method, path, response.text)
        if response.status_code >= 400:
            assert response.json()["error"]["code"] != "permission_denied", (method, path)
