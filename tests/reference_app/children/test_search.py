"""Search rules: two criteria, exact or phonetic only, capped, audited without clear text."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.audit.service import readable_details, sealed_children
from tests.fixtures.world import World, unique_name

SEARCH = "/api/v1/children/search"


def search(world: World, body: dict, role: Role = Role.HEALTH_PRACTITIONER):
    return world.client.post(SEARCH, json=body, headers=world.headers(role))


def test_phonetic_surname_match(world: World) -> None:
    given = unique_name()
    smith = world.child(family_name="Smith", given_name=given)
    response = search(world, {"family_name": "Smyth", "given_name": given})
    assert [r["child_id"] for r in response.json()["results"]] == [smith.id]


def test_exact_matches_rank_before_phonetic_ones(world: World) -> None:
    given = unique_name()
    smyth = world.child(family_name="Smyth", given_name=given)
    smith = world.child(family_name="Smith", given_name=given)
    ids = [
        r["child_id"]
        for r in search(world, {"family_name": "Smith", "given_name": given}).json()["results"]
    ]
    assert ids == [smith.id, smyth.id]


def test_date_of_birth_and_postcode_are_exact_and_normalised(world: World) -> None:
    child = world.child(date_of_birth="2014-03-09", postcode="PR4 7ZZ")
    found = search(world, {"family_name": child.family_name.upper(), "postcode": "pr47zz"})
    assert [r["child_id"] for r in found.json()["results"]] == [child.id]
    by_dob = search(world, {"family_name": child.family_name, "date_of_birth": "2014-03-09"})
    assert [r["child_id"] for r in by_dob.json()["results"]] == [child.id]
    near = search(world, {"family_name": child.family_name, "date_of_birth": "2014-03-10"})
    assert near.json()["results"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"family_name": "Smith"},
        {"given_name": "Olivia", "postcode": "PR1 1ZZ"},
        {"family_name": "Sm*", "given_name": "Olivia"},
        {"family_name": "Smith%", "given_name": "Olivia"},
        {"family_name": "Smith", "given_name": "Ol_via"},
        {"family_name": "", "given_name": "Olivia"},
        {"family_name": "Smith", "date_of_birth": "not-a-date"},
        {"family_name": "Smith", "given_name": "Olivia", "limit": 1000},
    ],
)
def test_broad_or_malformed_searches_are_refused(world: World, body: dict) -> None:
    response = search(world, body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_too_many_matches_means_refine_not_a_list(world: World) -> None:
    family, given = unique_name(), unique_name()
    cap = world.ctx.settings.search_result_cap
    for _ in range(cap + 1):
        world.child(family_name=family, given_name=given)
    body = search(world, {"family_name": family, "given_name": given}).json()
    assert body["results"] == []
    assert body["refine_search"] is True
    assert "refine" in body["message"]


def test_searches_are_audited_with_keyed_hashes_not_clear_text(world: World) -> None:
    child = world.child()
    search(world, {"family_name": child.family_name, "postcode": child.postcode})
    index = world.ctx.crypto.index
    with world.ctx.sessions() as db:
        event = db.scalars(
            select(AuditEvent).where(
                AuditEvent.tag == "child:search:performed",
                AuditEvent.details.contains(index.name(child.family_name).hex()),
            )
        ).one()
        # The children returned are recorded sealed: a reviewer reads their ids, a copy of
        # the database does not.
        assert readable_details(db, event)["result_ids"] == [child.id]
        assert json.loads(event.details)["result_refs"] == sealed_children(db, [child.id])
    assert child.family_name not in event.details
    assert child.postcode not in event.details
    assert child.id not in event.details
    assert index.postcode(child.postcode).hex() in event.details


def test_search_never_puts_personal_data_in_the_url(world: World) -> None:
    from reference_app.app import create_app

    app = create_app(world.ctx)
    for route in app.routes:
        path = getattr(route, "path", "")
        assert "name" not in path
        assert "postcode" not in path
        assert "birth" not in path
    get_search = world.client.get(SEARCH, headers=world.headers(Role.HEALTH_PRACTITIONER))
    assert get_search.status_code in (405, 422)
