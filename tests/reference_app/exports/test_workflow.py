"""The export workflow end to end: request by one data manager, approval by another, a signed
link, one encrypted download with watermark rows that trace back to the export."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import Any

import pytest

from reference_app.access.permissions import Role
from reference_app.exports.service import trace
from reference_app.kit.agefile import MAGIC
from reference_app.kit.fictional import is_fictional_postcode
from tests.fixtures.exports import (
    JUSTIFICATION,
    RECIPIENT,
    act,
    alerts_since,
    ask,
    events,
    flow,
    involve_at,
    last_alert_id,
    last_event_id,
    manager,
    recipient,
    request_body,
    standing_manager,
    with_settings,
)
from tests.fixtures.world import LA_A, LA_B, ChildInfo, World

ROW_KEYS = {
    "child_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "gender",
    "address",
    "la_code",
}


def expected_row(child: ChildInfo) -> dict[str, Any]:
    return {
        "child_id": child.id,
        "given_name": child.given_name,
        "family_name": child.family_name,
        "date_of_birth": child.date_of_birth,
        "gender": "female",
        "address": child.address,
        "la_code": child.la,
    }


def test_request_approve_link_download_decrypt_and_trace(world: World) -> None:
    f = flow(world, 4)
    shielded = world.child(LA_A, shielded=True)
    archived = world.child(LA_A, archived=True)
    deceased = world.child(LA_A, deceased=True)
    ended = world.child(LA_A)
    for child in (shielded, archived, deceased):
        involve_at(world, child, f.org_id)
    involve_at(world, ended, f.org_id, ended=True)

    response = f.request()
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "requested"
    assert body["row_count"] == 4
    assert body["requested_by"] == f.requester.id
    assert body["justification"] == JUSTIFICATION
    assert body["recipient_name"] == RECIPIENT

    approved = f.approve()
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == f.approver.id

    link = f.link()
    assert link.status_code == 200, link.text
    assert link.json()["url"] == f"/api/v1/exports/download/{f.token}"

    download = f.download()
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/octet-stream"
    assert f"contactpoint-export-{f.export_id}.age" in download.headers["content-disposition"]
    assert f.blob.startswith(MAGIC)

    rows = f.recipient.open(f.blob)
    assert [row["child_id"] for row in rows] == sorted(row["child_id"] for row in rows)
    assert all(set(row) == ROW_KEYS for row in rows)
    by_id = {row["child_id"]: row for row in rows}
    real = {child.id for child in f.children}
    assert real <= set(by_id)
    for child in f.children:
        assert by_id[child.id] == expected_row(child)
    for left_out in (shielded, archived, deceased, ended):
        assert left_out.id not in by_id

    marks = [row for row in rows if row["child_id"] not in real]
    assert len(marks) == 3
    for row in marks:
        assert row["la_code"] == LA_A
        assert is_fictional_postcode(row["address"]["postcode"])
        assert set(row["address"]) == set(f.children[0].address)

    with world.ctx.sessions() as db:
        [hit] = trace(db, world.ctx.crypto, "\n".join(json.dumps(r) for r in rows))
    assert hit["export_id"] == f.export_id
    assert hit["requested_by"]["id"] == f.requester.id
    assert hit["approved_by"]["id"] == f.approver.id
    assert hit["recipient_name"] == RECIPIENT
    assert hit["watermarks_found"] == sorted(row["child_id"] for row in marks)
    assert hit["download_sha256"] == hashlib.sha256(f.blob).hexdigest()

    shown = world.client.get(f"/api/v1/exports/{f.export_id}", headers=f.requester.headers).json()
    assert shown["status"] == "downloaded"
    assert shown["downloaded_rows"] == 7
    assert shown["download_sha256"] == hashlib.sha256(f.blob).hexdigest()


def test_a_later_look_at_a_watermark_child_raises_a_canary_alert(world: World) -> None:
    f = flow(world, 2).through_link()
    assert f.download().status_code == 200
    real = {child.id for child in f.children}
    mark = next(row for row in f.recipient.open(f.blob) if row["child_id"] not in real)
    before = last_alert_id(world)
    headers = {
        **world.headers(Role.SOCIAL_CARE_PRACTITIONER, LA_A),
        "X-Access-Reason": "safeguarding",
    }
    seen = world.client.get(f"/api/v1/children/{mark['child_id']}", headers=headers)
    assert seen.status_code == 200
    assert seen.json()["family_name"] == mark["family_name"]  # a real row in the registry
    [alert] = alerts_since(world, before, kind="canary_access")
    assert alert.child_id == mark["child_id"]
    assert alert.local_authority_id == world.la_ids[LA_A]


def test_the_downloaded_file_holds_no_clear_personal_data(world: World) -> None:
    f = flow(world, 3).through_link()
    assert f.download().status_code == 200
    for child in f.children:
        for value in (child.family_name, child.date_of_birth, child.postcode, child.id):
            assert value.encode() not in f.blob
    assert b"child_id" not in f.blob
    assert RECIPIENT.encode() not in f.blob


def age_of(born: str, today: date) -> int:
    year, month, day = (int(part) for part in born.split("-"))
    return today.year - year - ((today.month, today.day) < (month, day))


def test_an_age_range_narrows_the_scope(world: World) -> None:
    f = flow(world, 0)
    today = world.clock.now().date()
    by_age: dict[int, ChildInfo] = {}
    for age in (5, 10, 15):
        born = today - timedelta(days=int(365.25 * age) + 100)
        by_age[age] = world.child(LA_A, date_of_birth=born.isoformat())
        involve_at(world, by_age[age], f.org_id)
    assert f.request(min_age=8, max_age=12).json()["row_count"] == 1
    assert f.approve().status_code == 200
    assert f.link().status_code == 200
    assert f.download().status_code == 200
    rows = f.recipient.open(f.blob)
    ids = {row["child_id"] for row in rows}
    assert by_age[10].id in ids
    assert by_age[5].id not in ids
    assert by_age[15].id not in ids
    # The watermark rows keep to the range too, or they would stand out.
    assert all(8 <= age_of(row["date_of_birth"], today) <= 12 for row in rows)


def test_every_step_is_on_the_trail_with_its_tag_and_no_personal_data(world: World) -> None:
    start = last_event_id(world)
    f = flow(world, 2).through_link()
    assert f.download().status_code == 200
    [requested] = events(world, "export:requested", start)
    [approved] = events(world, "export:approved", start)
    [linked] = events(world, "export:link:issued", start)
    [downloaded] = events(world, "export:downloaded", start)
    assert requested["actor_id"] == f.requester.id
    assert requested["details"]["export_id"] == f.export_id
    assert requested["details"]["rows"] == 2
    assert requested["details"]["justification_enc"]  # kept, sealed
    assert approved["actor_id"] == f.approver.id
    assert approved["details"]["watermark_rows"] == 3
    assert approved["details"]["same_person"] is False
    assert linked["actor_id"] == f.requester.id
    assert downloaded["actor_id"] == f.requester.id
    assert downloaded["details"]["rows"] == 5
    assert downloaded["details"]["scope_rows"] == 2
    assert downloaded["details"]["sha256"] == hashlib.sha256(f.blob).hexdigest()
    assert downloaded["details"]["encrypted"] is True
    trail = json.dumps([requested, approved, linked, downloaded])
    for secret in (JUSTIFICATION, RECIPIENT, *(c.family_name for c in f.children)):
        assert secret not in trail
    marks = [
        r["child_id"]
        for r in f.recipient.open(f.blob)
        if r["child_id"] not in {c.id for c in f.children}
    ]
    for mark in marks:  # the trail is readable by the requester: it must not unmask the watermark
        assert mark not in trail


def test_a_refusal_is_recorded_and_ends_the_export(world: World) -> None:
    start = last_event_id(world)
    f = flow(world, 1)
    assert f.request().status_code == 201
    refused = act(world, f.approver, f.export_id, "refuse", json={"note": "Aggregate figures do"})
    assert refused.status_code == 200
    assert refused.json()["status"] == "refused"
    [event] = events(world, "export:refused", start)
    assert event["actor_id"] == f.approver.id
    assert event["details"]["withdrawn"] is False
    assert "Aggregate" not in json.dumps(event)
    assert event["details"]["decision_note_enc"]
    assert f.approve().status_code == 409
    assert f.approve().json()["error"]["code"] == "export_not_pending"


def test_the_requester_may_withdraw_their_own_request(world: World) -> None:
    start = last_event_id(world)
    f = flow(world, 1)
    assert f.request().status_code == 201
    withdrawn = act(world, f.requester, f.export_id, "refuse")
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "refused"
    [event] = events(world, "export:refused", start)
    assert event["details"]["withdrawn"] is True


def test_approving_twice_is_a_conflict(world: World) -> None:
    f = flow(world, 1)
    assert f.request().status_code == 201
    assert f.approve().status_code == 200
    again = f.approve(manager(world))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "export_not_pending"


def test_an_expired_request_cannot_be_approved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.exports import advance

    f = flow(world, 1)
    with_settings(world, monkeypatch, export_ttl_seconds=60)
    assert f.request().status_code == 201
    approver_headers = f.approver.headers
    assert approver_headers
    advance(world, monkeypatch, 61)
    listed = world.client.get(f"/api/v1/exports/{f.export_id}", headers=f.requester.headers)
    assert listed.json()["status"] == "expired"
    response = f.approve()
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "export_expired"


def test_another_las_manager_can_neither_see_nor_decide(world: World) -> None:
    f = flow(world, 1)
    assert f.request().status_code == 201
    other = standing_manager(world, LA_B)
    assert (
        world.client.get(f"/api/v1/exports/{f.export_id}", headers=other.headers).status_code == 404
    )
    listed = world.client.get("/api/v1/exports", headers=other.headers).json()
    assert f.export_id not in {e["id"] for e in listed}
    for action in ("approve", "refuse", "link"):
        response = act(world, other, f.export_id, action)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "export_not_found"
    own = world.client.get("/api/v1/exports", headers=f.approver.headers).json()
    assert f.export_id in {e["id"] for e in own}


def test_a_scope_is_the_callers_own_la_only(world: World) -> None:
    f = flow(world, 0)
    foreign_org = world.orgs[(LA_B, next(k for (la, k) in world.orgs if la == LA_B))]
    response = ask(world, f.requester, request_body(foreign_org, f.recipient))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "export_scope_invalid"


@pytest.mark.parametrize(
    "key",
    [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
        "-----END PUBLIC KEY-----\n",  # an Ed25519 key: a signing key, not for encryption
        # The old form, an X25519 key in PEM: exports are sealed in the age format now.
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAQrrRD3dYv5IpHIGMn2ArH5tlzwfYG9JwWHhnn1DRJUE=\n"
        "-----END PUBLIC KEY-----\n",
        "age15dz00cej3nrwe3esmthtxzclgptng5wlt3gad9gxg35z5z7xcv5qcwtl6q",  # a bad checksum
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",  # secret
        f"{recipient().public}\n{recipient().public}",  # two recipients: one export, one key
    ],
)
def test_a_bad_recipient_key_is_refused(world: World, key: str) -> None:
    body = request_body(None, recipient())
    body["recipient_public_key"] = key
    response = ask(world, standing_manager(world), body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_recipient_key"


@pytest.mark.parametrize(
    "body",
    [
        {"scope": {"kind": "organisation"}},
        {"scope": {"kind": "local_authority", "organisation_id": 1}},
        {"scope": {"kind": "local_authority", "min_age": 9, "max_age": 3}},
        {"scope": {"kind": "local_authority"}, "justification": "short"},
    ],
)
def test_malformed_requests_are_422(world: World, body: dict[str, Any]) -> None:
    full = {**request_body(None, recipient()), **body}
    response = ask(world, standing_manager(world), full)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


ROUTES = [
    ("post", "/api/v1/exports"),
    ("get", "/api/v1/exports"),
    ("get", "/api/v1/exports/1"),
    ("post", "/api/v1/exports/1/approve"),
    ("post", "/api/v1/exports/1/refuse"),
    ("post", "/api/v1/exports/1/link"),
    ("get", "/api/v1/exports/download/e30.AAAA"),
]
NOT_MANAGERS = [role for role in Role if role is not Role.LA_DATA_MANAGER]


@pytest.mark.parametrize("role", NOT_MANAGERS, ids=[r.value for r in NOT_MANAGERS])
def test_no_other_role_reaches_any_export_route(world: World, role: Role) -> None:
    body = request_body(None, recipient())
    for method, path in ROUTES:
        kwargs: dict[str, Any] = (
            {"json": body} if path == "/api/v1/exports" and method == "post" else {}
        )
        response = world.client.request(method, path, headers=world.headers(role, LA_A), **kwargs)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "permission_denied"


def test_export_routes_need_a_session(world: World) -> None:
    for method, path in ROUTES:
        assert world.client.request(method, path).status_code == 401
