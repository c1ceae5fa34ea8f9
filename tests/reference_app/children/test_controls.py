"""Need-to-know, shielding and the audit of views and searches, each switched off in a
development build, let their abuse through, so the harness can show it notices a missing
control. (That each works when on is shown in test_role_matrix.py, test_view.py, test_writes.py
and test_search.py; the pairs are named in each test's docstring.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from httpx import Response
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.alerts.models import Alert, Canary
from reference_app.audit.models import AuditEvent
from reference_app.kit.controls import Control
from tests.fixtures.world import LA_A, LA_B, World, strict_world

SEARCH = "/api/v1/children/search"


def view(
    w: World, headers: dict[str, str], child_id: str, reason: str = "safeguarding"
) -> Response:
    return w.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": reason}
    )


def found(w: World, headers: dict[str, str], body: dict[str, Any]) -> list[str]:
    response = w.client.post(SEARCH, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return [r["child_id"] for r in response.json()["results"]]


def test_without_need_to_know_every_reader_sees_every_record_in_full(world: World) -> None:
    """On: test_role_matrix.test_view,
    test_view.test_archived_records_are_for_the_owning_data_managers_only,
    test_writes.test_a_recorded_death_closes_the_record_like_an_archive."""
    with strict_world(world, off=[Control.NEED_TO_KNOW], limits_scale=100) as w:
        stranger = w.login(w.new_account(Role.EDUCATION_PRACTITIONER, LA_B))
        other_manager = w.login(w.new_account(Role.LA_DATA_MANAGER, LA_B))
        open_child = w.child(LA_A)
        archived = w.child(LA_A, archived=True)
        deceased = w.child(LA_A, deceased=True)
        for headers in (stranger, other_manager):
            for child in (open_child, archived, deceased):
                response = view(w, headers, child.id)
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["access"]["level"] == "full"
                assert body["address"] == child.address
                assert body["carers"][0]["phone"] == child.carers[0]["phone"]
                by_name = {"family_name": child.family_name, "given_name": child.given_name}
                assert found(w, headers, by_name) == [child.id]
        # Shielding is a control of its own: still on, it still withholds.
        shielded = w.child(LA_A, shielded=True)
        limited = view(w, stranger, shielded.id).json()
        assert limited["access"]["level"] == "limited"
        assert "address" not in limited


def test_without_shielding_a_shielded_record_is_shown_and_found_by_postcode(world: World) -> None:
    """On: test_role_matrix.test_view and test_search (the shielded cells)."""
    with strict_world(world, off=[Control.SHIELDING], limits_scale=100) as w:
        local = w.login(w.new_account(Role.HEALTH_PRACTITIONER, LA_A))
        stranger = w.login(w.new_account(Role.HEALTH_PRACTITIONER, LA_B))
        child = w.child(LA_A, shielded=True)
        shown = view(w, local, child.id).json()
        assert shown["access"]["level"] == "full"
        assert shown["address"] == child.address
        assert shown["carers"][0]["phone"] == child.carers[0]["phone"]
        # Need-to-know still limits a stranger, but as for any record: nothing says "shielded".
        limited = view(w, stranger, child.id).json()
        assert limited["access"]["level"] == "limited"
        assert "shielded" not in limited["contact"]
        by_postcode = {"family_name": child.family_name, "postcode": child.postcode}
        assert found(w, local, by_postcode) == [child.id]
        assert found(w, stranger, by_postcode) == [child.id]


def _events(w: World, **where: Any) -> list[AuditEvent]:
    with w.ctx.sessions() as db:
        query = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        return list(db.scalars(query))


def test_without_the_audit_trail_views_and_searches_leave_no_trace(world: World) -> None:
    """On: test_role_matrix.test_view (its event),
    test_search.test_searches_are_audited_with_keyed_hashes_not_clear_text."""
    with strict_world(world, off=[Control.AUDIT_TRAIL], limits_scale=100) as w:
        account = w.new_account(Role.SOCIAL_CARE_PRACTITIONER, LA_A)
        headers = w.login(account)
        child = w.child(LA_A)
        canary = w.child(LA_B)
        with w.ctx.sessions() as db, db.begin():
            db.add(Canary(child_id=canary.id, registered_at=datetime.now(UTC)))
        by_name = {"family_name": child.family_name, "given_name": child.given_name}
        assert found(w, headers, by_name) == [child.id]
        assert view(w, headers, child.id).status_code == 200
        assert view(w, headers, canary.id).status_code == 200
        assert view(w, headers, child.id, reason="emergency_override").status_code == 200
        # Not a view: still on the trail.
        assert w.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        tags = [e.tag for e in _events(w, actor_id=account.id)]
        assert tags == ["auth:login:succeeded", "alert:raised", "alert:raised", "auth:logout"]
        # The alerts still go out, without an event to point at.
        with w.ctx.sessions() as db:
            alerts = db.scalars(
                select(Alert).where(Alert.subject_user_id == account.id).order_by(Alert.id)
            ).all()
        assert [(a.kind, a.child_id, a.audit_event_id) for a in alerts] == [
            ("canary_access", canary.id, None),
            ("override", child.id, None),
        ]
