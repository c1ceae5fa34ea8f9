"""What search and view return, field by field, for every persona x LA x involvement x shield."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import select

from reference_app.access.permissions import PRACTITIONER_ROLES, Role
from reference_app.audit.models import AuditEvent
from tests.fixtures.world import LA_A, LA_B, ROLE_HOME, ChildInfo, World

LIMITED_FIELDS = {
    "child_id",
    "given_name",
    "family_name",
    "gender",
    "age",
    "local_authority",
    "shielded",
    "contact",
    "access",
}
FULL_ONLY = {
    "date_of_birth",
    "address",
    "carers",
    "services",
    "warning_flags",
    "archived",
    "deceased",
}
LA_NAMES = {LA_A: "Lancashire", LA_B: "Manchester"}
NO_CHILD_DATA = {Role.NATIONAL_AUDITOR, Role.SYSTEM_ADMINISTRATOR}

CELLS = list(itertools.product(Role, ("own", "other"), (True, False), (True, False)))
EVERY_CELL = pytest.mark.parametrize(
    ("role", "la", "involved", "shielded"),
    CELLS,
    ids=[
        f"{r.value}-{la}-{'inv' if i else 'noinv'}-{'sh' if s else 'open'}" for r, la, i, s in CELLS
    ],
)


def expected_view(role: Role, la: str, involved: bool, shielded: bool) -> tuple[str, str]:
    """(level, relationship) the rules promise; written out, not derived from the app's code."""
    if role is Role.LA_DATA_MANAGER:
        return ("full", "data_manager") if la == "own" else ("limited", "self_claimed")
    relationship = "involved" if involved else "self_claimed"
    if shielded:
        return "limited", relationship
    if involved or la == "own":
        return "full", relationship
    return "limited", relationship


def _setup(world: World, role: Role, la: str, involved: bool, shielded: bool) -> ChildInfo:
    child = world.child(LA_A if la == "own" else LA_B, shielded=shielded)
    if involved:
        world.involve(child, ROLE_HOME[role], la=LA_A)
    return child


@EVERY_CELL
def test_view(world: World, role: Role, la: str, involved: bool, shielded: bool) -> None:
    child = _setup(world, role, la, involved, shielded)
    response = world.client.get(
        f"/api/v1/children/{child.id}",
        headers={**world.headers(role), "X-Access-Reason": "safeguarding"},
    )
    if role in NO_CHILD_DATA:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
        return
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    level, relationship = expected_view(role, la, involved, shielded)
    assert body["access"]["level"] == level
    assert body["access"]["relationship"] == relationship
    assert body["given_name"] == child.given_name
    assert body["family_name"] == child.family_name
    assert body["shielded"] is shielded
    if level == "limited":
        assert set(body) == LIMITED_FIELDS
        assert "management team" in body["contact"]
        # A shielded record names no LA, in the field or in the contact text.
        if shielded:
            assert body["local_authority"] is None
            assert LA_NAMES[child.la] not in body["contact"]
        else:
            assert body["local_authority"]["code"] == child.la
            assert LA_NAMES[child.la] in body["contact"]
        assert child.postcode not in str(body)
        assert child.carers[0]["phone"] not in str(body)
    else:
        assert set(body) >= FULL_ONLY
        assert body["date_of_birth"] == child.date_of_birth
        assert body["address"] == child.address
        assert body["carers"][0]["phone"] == child.carers[0]["phone"]
        assert body["carers"][0]["email"] == child.carers[0]["email"]
        assert (len(body["services"]) == 1) is involved
    with world.ctx.sessions() as db:
        event = db.scalars(
            select(AuditEvent).where(
                AuditEvent.child_id == child.id, AuditEvent.tag == "child:record:viewed"
            )
        ).one()
    assert event.reason_code == "safeguarding"
    assert event.relationship == relationship
    assert event.actor_id == world.accounts[(role, LA_A)].id


@EVERY_CELL
def test_search(world: World, role: Role, la: str, involved: bool, shielded: bool) -> None:
    child = _setup(world, role, la, involved, shielded)
    headers = world.headers(role)
    by_visible = {"family_name": child.family_name, "given_name": child.given_name}
    by_hidden = {"family_name": child.family_name, "postcode": child.postcode}
    visible = world.client.post("/api/v1/children/search", json=by_visible, headers=headers)
    hidden = world.client.post("/api/v1/children/search", json=by_hidden, headers=headers)
    if role in NO_CHILD_DATA:
        assert visible.status_code == hidden.status_code == 403
        return
    assert visible.status_code == hidden.status_code == 200
    # Findable by the fields shielding leaves visible ...
    [result] = visible.json()["results"]
    assert result["child_id"] == child.id
    assert set(result) == {
        "child_id",
        "given_name",
        "family_name",
        "gender",
        "age",
        "local_authority",
        "contact",
    }
    # ... without saying which LA a shielded child lives in, except to that LA's own team.
    if shielded and not (role is Role.LA_DATA_MANAGER and la == "own"):
        assert result["local_authority"] is None
        assert "national registry" in result["contact"]
    else:
        assert result["local_authority"] == LA_NAMES[child.la]
        assert result["contact"] is None
    # ... but a search on a hidden field never confirms a shielded child exists, except to the
    # data managers of the child's own LA.
    sees_hidden = not shielded or (role is Role.LA_DATA_MANAGER and la == "own")
    ids = [r["child_id"] for r in hidden.json()["results"]]
    assert ids == ([child.id] if sees_hidden else [])
    if not sees_hidden:
        assert hidden.json() == {"results": [], "count": 0, "refine_search": False, "message": None}


def test_matrix_covers_every_role() -> None:
    assert {c[0] for c in CELLS} == set(Role)
    assert set(Role) > PRACTITIONER_ROLES
