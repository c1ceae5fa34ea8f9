"""Shielding protects the household: a child sharing a shielded child's address or a carer is
withheld and unfindable by postcode as the shielded child is; and no search or limited view of
a shielded child names the LA it lives in."""

from __future__ import annotations

from typing import Any

from httpx import Response
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.carers.models import ChildCarer
from reference_app.children.service import refresh_all_households, same_address
from reference_app.kit.controls import Control
from tests.fixtures.world import LA_A, LA_B, World, strict_world, unique_name

SEARCH = "/api/v1/children/search"
# The world is shared by the session's tests: each test's family has a house of its own.
POSTCODE = "PR9 7ZZ"


def home(family: str) -> dict[str, Any]:
    return {"line1": f"{family} House", "line2": None, "town": "Preston", "postcode": POSTCODE}


def elsewhere(family: str) -> dict[str, Any]:
    return {**home(family), "line1": f"{family} Cottage"}


def manager(w: World, la: str = LA_A) -> dict[str, str]:
    return w.headers(Role.LA_DATA_MANAGER, la)


def register(
    w: World,
    family: str,
    address: dict[str, Any],
    given: str = "Ada",
    dm: dict[str, str] | None = None,
) -> str:
    made = w.client.post(
        "/api/v1/children",
        json={
            "given_name": given,
            "family_name": family,
            "date_of_birth": "2016-03-04",
            "gender": "female",
            "address": address,
        },
        headers=dm or manager(w),
    )
    assert made.status_code == 201, made.text
    return str(made.json()["child_id"])


def add_carer(w: World, child_id: str, family: str) -> int:
    added = w.client.post(
        f"/api/v1/children/{child_id}/carers",
        json={"given_name": "Rhea", "family_name": family, "relationship": "mother"},
        headers=manager(w),
    )
    assert added.status_code == 201, added.text
    return int(added.json()["carer_id"])


def link(w: World, child_id: str, carer_id: int, la: str = LA_A) -> Response:
    return w.client.post(
        f"/api/v1/children/{child_id}/carers/{carer_id}",
        json={"relationship": "mother", "parental_responsibility": True},
        headers=manager(w, la),
    )


def shield(
    w: World, child_id: str, shielded: bool = True, dm: dict[str, str] | None = None
) -> None:
    response = w.client.post(
        f"/api/v1/children/{child_id}/shield",
        json={"shielded": shielded},
        headers=dm or manager(w),
    )
    if response.status_code == 202:  # lifting a shield waits for a second data manager
        second = w.login(w.new_account(Role.LA_DATA_MANAGER, LA_A))
        response = w.client.post(
            f"/api/v1/children/{child_id}/unshield/approve", json={}, headers=second
        )
    assert response.status_code == 200, response.text


def view(w: World, headers: dict[str, str], child_id: str) -> dict[str, Any]:
    response = w.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": "safeguarding"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def found(w: World, headers: dict[str, str], **criteria: str) -> list[str]:
    response = w.client.post(SEARCH, json=criteria, headers=headers)
    assert response.status_code == 200, response.text
    return [r["child_id"] for r in response.json()["results"]]


def assert_withheld(body: dict[str, Any]) -> None:
    assert body["access"]["level"] == "limited"
    assert not {"address", "carers", "services", "date_of_birth"} & set(body)
    assert body["local_authority"] is None
    assert body["shielded"] is True
    assert "Lancashire" not in body["contact"]


def test_a_sibling_at_a_shielded_childs_address_is_withheld_and_unfindable(world: World) -> None:
    family = unique_name()
    shielded = register(world, family, home(family))
    sibling = register(world, family, home(family), given="Bea")
    practitioner = world.headers(Role.HEALTH_PRACTITIONER)
    assert found(world, practitioner, family_name=family, postcode=POSTCODE) == sorted(
        [shielded, sibling]
    )
    shield(world, shielded)
    assert found(world, practitioner, family_name=family, postcode="pr97zz") == []
    assert_withheld(view(world, practitioner, sibling))
    # Still findable by the fields shielding leaves visible, with no LA named.
    assert found(world, practitioner, family_name=family, given_name="Bea") == [sibling]
    # The LA's own management team sees everything, and why it is withheld from others.
    full = view(world, manager(world), sibling)
    assert full["address"]["line1"] == home(family)["line1"]
    assert full["household_shielded"] is True
    assert full["shielded"] is False
    assert found(world, manager(world), family_name=family, postcode=POSTCODE) == sorted(
        [shielded, sibling]
    )


def test_the_address_is_compared_without_case_spacing_or_punctuation() -> None:
    house = {"line1": "4 Weir Street", "line2": None, "town": "Preston", "postcode": "PR7 3ZZ"}
    assert same_address(house, {**house, "line1": "4, weir  street", "postcode": "pr73zz"})
    assert same_address(house, {**house, "town": "Fulwood"})
    assert not same_address(house, {**house, "line1": "9 Canal Walk"})
    assert not same_address(house, {**house, "line2": "Flat 2"})


def test_a_neighbour_at_the_same_postcode_is_not_the_household(world: World) -> None:
    family = unique_name()
    shielded = register(world, family, home(family))
    neighbour = register(world, family, elsewhere(family), given="Cy")
    shield(world, shielded)
    practitioner = world.headers(Role.EDUCATION_PRACTITIONER)
    assert found(world, practitioner, family_name=family, postcode=POSTCODE) == [neighbour]
    assert view(world, practitioner, neighbour)["access"]["level"] == "full"


def test_a_child_sharing_a_carer_is_the_household_wherever_it_lives(world: World) -> None:
    family = unique_name()
    shielded = register(world, family, home(family))
    half_sibling = register(world, family, elsewhere(family), given="Dot")
    carer = add_carer(world, shielded, family)
    shield(world, shielded)
    practitioner = world.headers(Role.SOCIAL_CARE_PRACTITIONER)
    assert view(world, practitioner, half_sibling)["access"]["level"] == "full"
    linked = link(world, half_sibling, carer)
    assert linked.status_code == 201, linked.text
    assert_withheld(view(world, practitioner, half_sibling))
    assert found(world, practitioner, family_name=family, postcode=POSTCODE) == []
    again = link(world, half_sibling, carer)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "carer_already_linked"


def test_only_a_carer_of_the_callers_la_can_be_linked(world: World) -> None:
    family = unique_name()
    child = register(world, family, home(family))
    carer = add_carer(world, child, family)
    foreign = world.child(LA_B)
    # Another LA's data manager cannot reach this LA's carer, nor this LA's team that child.
    refused = link(world, foreign.id, carer, la=LA_B)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "carer_not_found"
    not_ours = link(world, foreign.id, carer)
    assert not_ours.status_code == 404
    assert not_ours.json()["error"]["code"] == "child_not_found"
    with world.ctx.sessions() as db:
        foreign_carer = db.scalar(
            select(ChildCarer.carer_id).where(ChildCarer.child_id == foreign.id)
        )
    assert foreign_carer is not None
    stolen = link(world, child, foreign_carer)
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "carer_not_found"


def test_unshielding_or_moving_away_releases_the_household(world: World) -> None:
    family = unique_name()
    shielded = register(world, family, home(family))
    sibling = register(world, family, home(family), given="Eve")
    practitioner = world.headers(Role.HEALTH_PRACTITIONER)
    shield(world, shielded)
    assert view(world, practitioner, sibling)["access"]["level"] == "limited"
    shield(world, shielded, shielded=False)
    assert view(world, practitioner, sibling)["access"]["level"] == "full"
    shield(world, shielded)
    moved = world.client.patch(
        f"/api/v1/children/{sibling}", json={"address": elsewhere(family)}, headers=manager(world)
    )
    assert moved.status_code == 200
    assert view(world, practitioner, sibling)["access"]["level"] == "full"
    back = world.client.patch(
        f"/api/v1/children/{sibling}", json={"address": home(family)}, headers=manager(world)
    )
    assert back.status_code == 200
    assert view(world, practitioner, sibling)["access"]["level"] == "limited"


def test_a_child_registered_at_a_shielded_childs_address_is_protected(world: World) -> None:
    family = unique_name()
    shield(world, register(world, family, home(family)))
    newborn = register(world, family, home(family), given="Fay")
    practitioner = world.headers(Role.HEALTH_PRACTITIONER)
    assert found(world, practitioner, family_name=family, postcode=POSTCODE) == []
    assert_withheld(view(world, practitioner, newborn))


def test_a_search_finding_a_shielded_child_names_no_la(world: World) -> None:
    child = world.child(LA_A, shielded=True)
    for headers in (world.headers(Role.POLICE_PRACTITIONER, LA_B), manager(world, LA_B)):
        response = world.client.post(
            SEARCH,
            json={"family_name": child.family_name, "date_of_birth": child.date_of_birth},
            headers=headers,
        )
        [result] = response.json()["results"]
        assert result["local_authority"] is None
        assert "Lancashire" not in response.text
        assert "LA management team" in result["contact"]
        assert_withheld(view(world, headers, child.id))


def test_without_shielding_the_household_and_the_la_are_shown(world: World) -> None:
    """On: the tests above."""
    with strict_world(world, off=[Control.SHIELDING], limits_scale=100) as w:
        # Fresh accounts: the strict world refuses a one-time code used before.
        dm = w.login(w.new_account(Role.LA_DATA_MANAGER, LA_A))
        practitioner = w.login(w.new_account(Role.HEALTH_PRACTITIONER, LA_A))
        far = w.login(w.new_account(Role.HEALTH_PRACTITIONER, LA_B))
        family = unique_name()
        shielded = register(w, family, home(family), dm=dm)
        sibling = register(w, family, home(family), given="Gus", dm=dm)
        shield(w, shielded, dm=dm)
        assert found(w, practitioner, family_name=family, postcode=POSTCODE) == sorted(
            [shielded, sibling]
        )
        assert view(w, practitioner, sibling)["address"]["line1"] == home(family)["line1"]
        response = w.client.post(
            SEARCH, json={"family_name": family, "given_name": "Ada"}, headers=far
        )
        [result] = response.json()["results"]
        assert result["local_authority"] == "Lancashire"
        assert result["contact"] is None


def test_households_loaded_without_the_flag_are_recomputed(world: World) -> None:
    """Rows written before the flag existed (or by a bulk load) are flagged on demand."""
    shielded = world.child(LA_A, shielded=True)
    relative = world.child(LA_A)
    with world.ctx.sessions() as db, db.begin():
        carer_id = db.scalar(select(ChildCarer.carer_id).where(ChildCarer.child_id == shielded.id))
        assert carer_id is not None
        db.add(ChildCarer(child_id=relative.id, carer_id=carer_id, relationship="father"))
    practitioner = world.headers(Role.HEALTH_PRACTITIONER)
    assert view(world, practitioner, relative.id)["access"]["level"] == "full"
    with world.ctx.sessions() as db, db.begin():
        assert refresh_all_households(db, world.ctx.crypto) >= 1
    assert_withheld(view(world, practitioner, relative.id))
