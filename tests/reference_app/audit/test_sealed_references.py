"""Who viewed whom is not in a copy of the database: the trail, alerts, requests and the limit
store name children only sealed, while reviewers, subject access packs and the limits still
see them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, create_engine, select, text

from reference_app.access.permissions import Role
from reference_app.alerts.models import Alert, Canary
from reference_app.audit.models import AuditEvent, AuditSearchHit
from reference_app.audit.service import RequestInfo, record
from reference_app.audit.tags import EventTag
from reference_app.children.models import UnshieldRequest
from reference_app.kit.db import normalise_url
from reference_app.limits.store import MemoryOps
from reference_app.requests.models import ChangeRequest
from tests.fixtures.world import LA_A, LA_B, ChildInfo, World

SEARCHED = "child:search:performed"
# Every table outside the record itself that refers to a child by id.
REFERRING = (
    "audit_events",
    "audit_search_hits",
    "alerts",
    "unshield_requests",
    "change_requests",
    "limit_members",
)


@contextmanager
def copy_of(world: World) -> Iterator[Connection]:
    """The database as a thief reads it: a plain connection, holding no keys."""
    engine = create_engine(normalise_url(world.database.owner_url))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def naming(conn: Connection, table: str, child_id: str) -> list[str]:
    """The columns of ``table`` holding ``child_id`` in clear, as text or as bytes."""
    found = []
    for row in conn.execute(text(f"SELECT * FROM {table}")):
        for column, value in row._mapping.items():
            if isinstance(value, bytes | memoryview):
                value = bytes(value).decode("latin-1")
            if value is not None and child_id in str(value):
                found.append(f"{table}.{column}")
    return found


def limit_members(world: World) -> list[str]:
    """Every member of the limit store's sets: rows of the database store, or the memory's."""
    with world.ctx.limits.open() as ops:
        if isinstance(ops, MemoryOps):
            return [m for members, _ in ops.sets.values() for m in members]
    with copy_of(world) as conn:
        return [str(m) for m in conn.execute(text("SELECT member FROM limit_members")).scalars()]


def search(world: World, child: ChildInfo, headers: dict[str, str]) -> list[str]:
    found = world.client.post(
        "/api/v1/children/search",
        json={"family_name": child.family_name, "given_name": child.given_name},
        headers=headers,
    )
    assert found.status_code == 200, found.text
    return [r["child_id"] for r in found.json()["results"]]


def view(world: World, child_id: str, headers: dict[str, str]) -> Any:
    response = world.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": "safeguarding"}
    )
    assert response.status_code == 200, response.text
    return response


def test_a_copy_of_the_database_names_no_child_that_was_viewed_found_or_asked_about(
    world: World,
) -> None:
    manager = world.headers(Role.LA_DATA_MANAGER)
    teacher = world.headers(Role.EDUCATION_PRACTITIONER)
    # A canary (its alert names it), viewed and found; a shielded child whose unshield is asked
    # for (a request and an alert name it); and a correction asked for on the family's behalf.
    canary = world.child()
    with world.ctx.sessions() as db, db.begin():
        db.add(Canary(child_id=canary.id, registered_at=datetime.now(UTC)))
    view(world, canary.id, teacher)
    assert search(world, canary, teacher) == [canary.id]
    shielded = world.child(shielded=True)
    asked = world.client.post(
        f"/api/v1/children/{shielded.id}/shield", json={"shielded": False}, headers=manager
    )
    assert asked.status_code == 202, asked.text
    corrected = world.client.post(
        "/api/v1/requests",
        json={
            "child_id": canary.id,
            "kind": "rectification",
            "justification": "The family wrote in",
            "changes": {"given_name": "Harriet"},
        },
        headers=teacher,
    )
    assert corrected.status_code == 201, corrected.text
    # The registry still finds every row by child.
    with world.ctx.sessions() as db:
        about = {
            e.tag for e in db.scalars(select(AuditEvent).where(AuditEvent.child_id == canary.id))
        }
        assert {"child:record:viewed", "alert:raised", "request:raised"} <= about
        assert db.scalars(select(AuditSearchHit).where(AuditSearchHit.child_id == canary.id)).all()
        assert db.scalars(select(Alert).where(Alert.child_id == canary.id)).all()
        assert db.scalars(select(Alert).where(Alert.child_id == shielded.id)).all()
        assert db.scalars(
            select(UnshieldRequest).where(UnshieldRequest.child_id == shielded.id)
        ).all()
        assert db.scalars(select(ChangeRequest).where(ChangeRequest.child_id == canary.id)).all()
    with copy_of(world) as conn:
        for child in (canary, shielded):
            for table in REFERRING:
                assert naming(conn, table, child.id) == [], table
        # Rows are there, sealed: a token per child and column, the same for every row.
        tokens = conn.execute(
            text("SELECT child_id FROM audit_events WHERE tag = 'child:unshield:requested'")
        ).scalars()
        assert all(isinstance(t, bytes | memoryview) and len(bytes(t)) > 13 for t in tokens)
    # The limits count the children without naming them.
    members = limit_members(world)
    assert members
    assert not [m for m in members if canary.id in m or shielded.id in m]


def test_a_reviewer_reads_which_children_a_search_returned(world: World) -> None:
    child = world.child()
    searcher = world.accounts[(Role.HEALTH_PRACTITIONER, LA_A)]
    assert search(world, child, world.headers(Role.HEALTH_PRACTITIONER)) == [child.id]
    events = world.client.get(
        "/api/v1/audit/events",
        params={"actor_id": searcher.id, "tag": SEARCHED, "limit": 1},
        headers=world.headers(Role.NATIONAL_AUDITOR),
    ).json()
    [event] = events
    assert event["details"]["result_ids"] == [child.id]
    assert "result_refs" not in event["details"]
    with world.ctx.sessions() as db:
        stored = db.get(AuditEvent, event["id"])
        assert stored is not None
        assert child.id not in stored.details
        assert len(json.loads(stored.details)["result_refs"]) == 1


def test_an_las_reviewer_sees_others_views_of_its_children_and_not_of_anyone_elses(
    world: World,
) -> None:
    ours = world.child(LA_B)
    theirs = world.child(LA_A)
    outsider = world.headers(Role.SOCIAL_CARE_PRACTITIONER, LA_A)
    viewed = view(world, ours.id, outsider)
    view(world, theirs.id, outsider)
    listed = world.client.get(
        "/api/v1/audit/events",
        params={"limit": 50},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_B),
    ).json()
    children = {e["child_id"] for e in listed}
    assert ours.id in children
    assert theirs.id not in children
    assert viewed.headers["x-request-id"] in {e["request_id"] for e in listed}
    # Named by its id, the LA's own child shows every event; another LA's child, none by others.
    own = world.client.get(
        "/api/v1/audit/events",
        params={"child_id": ours.id},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_B),
    ).json()
    assert "child:record:viewed" in {e["tag"] for e in own}
    other = world.client.get(
        "/api/v1/audit/events",
        params={"child_id": theirs.id},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_B),
    ).json()
    assert other == []


def test_the_pack_lists_searches_recorded_with_clear_ids_before_sealing(world: World) -> None:
    # A search event written before 0017 lists its results in clear; its details are hashed
    # as stored, so it stays so, and the pack still finds it.
    child = world.child()
    with world.ctx.sessions() as db, db.begin():
        old = record(
            db,
            world.ctx,
            EventTag.CHILD_SEARCH_PERFORMED,
            info=RequestInfo(request_id="before-0017", source="127.0.0.1"),
            actor_id=world.accounts[(Role.HEALTH_PRACTITIONER, LA_B)].id,
            details={
                "criteria": {},
                "matched": 1,
                "refine_search": False,
                "result_ids": [child.id],
            },
            search_hits=[child.id],
        )
    assert search(world, child, world.headers(Role.POLICE_PRACTITIONER)) == [child.id]
    history = world.client.get(
        f"/api/v1/subject-access/{child.id}", headers=world.headers(Role.LA_DATA_MANAGER)
    ).json()["access_history"]
    assert len([e for e in history if e["action"] == SEARCHED]) == 2
    assert old in {e["event_id"] for e in history}


def test_the_child_filter_takes_only_an_identifier_as_the_api_gives_it(world: World) -> None:
    """A child filter that is not a canonical identifier with its check character is refused
    (422), as its documented pattern says, never answered with an empty page."""
    child = world.child(LA_B)
    headers = world.headers(Role.LA_DATA_MANAGER, LA_B)
    wrong_check = child.id[:-1] + next(c for c in "0123456789" if c != child.id[-1])
    for bad in ("-4198226547", child.id.lower(), wrong_check, child.id[:-1]):
        refused = world.client.get(
            "/api/v1/audit/events", params={"child_id": bad}, headers=headers
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["code"] == "invalid_child_id"
    kept = world.client.get("/api/v1/audit/events", params={"child_id": child.id}, headers=headers)
    assert kept.status_code == 200, kept.text
