"""Sealed shield flags: what a copy of ``children`` holds, and the rules SQL can no longer apply
(searches, household seeds, export scopes) applied after reading, to the same effect."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.children import repository
from reference_app.children.models import Child
from reference_app.exports import repository as exports
from reference_app.kit.sealing import stored_table
from tests.fixtures.world import LA_A, LA_B, ChildInfo, World, unique_name

# Outside the postcodes the world gives at random: a shielded child here makes no other test's
# child a member of its household.
APART = "PR9 9ZY"


def principal(world: World, role: Role, la: str = LA_A) -> Principal:
    return Principal(
        user_id=0,
        username="reader",
        role=role,
        organisation_id=0,
        local_authority_id=world.la_ids[la],
        session_id="s",
        permissions=frozenset(),
    )


def set_flags(world: World, child: ChildInfo, **flags: bool) -> None:
    with world.ctx.sessions() as db, db.begin():
        row = db.get(Child, child.id)
        assert row is not None
        for name, value in flags.items():
            setattr(row, name, value)


def stored_flags(world: World, *ids: str) -> dict[str, tuple[bytes, bytes]]:
    """The flag columns as a copy of the database holds them."""
    table = stored_table(Child.__table__)  # type: ignore[arg-type]
    query = select(table.c.id, table.c.shielded, table.c.household_shielded).where(
        table.c.id.in_(ids)
    )
    with world.ctx.engine.connect() as conn:
        return {row[0]: (bytes(row[1]), bytes(row[2])) for row in conn.execute(query)}


def search(
    world: World,
    who: Principal,
    family: str,
    *,
    postcode: str | None,
    limit: int = 11,
    shielding: bool = True,
) -> set[str]:
    index = world.ctx.crypto.index
    with world.ctx.sessions() as db:
        found = repository.search(
            db,
            who,
            family_name=index.name(family),
            family_phonetic=index.phonetic(family),
            given_name=None,
            date_of_birth=None,
            postcode=index.postcode(postcode) if postcode else None,
            limit=limit,
            need_to_know=True,
            shielding=shielding,
        )
        return {hit.child.id for hit in found}


def test_the_flag_columns_hold_same_length_ciphertexts_never_alike(world: World) -> None:
    family = unique_name()
    shielded = world.child(family_name=family, postcode=APART, shielded=True)
    also_shielded = world.child(family_name=family, postcode=APART, shielded=True)
    open_child = world.child(family_name=family)
    before = stored_flags(world, shielded.id, also_shielded.id, open_child.id)
    blobs = [blob for pair in before.values() for blob in pair]
    assert len({len(blob) for blob in blobs}) == 1
    assert len(set(blobs)) == len(blobs)  # shielded or not, this row or that: all different
    assert not {b"\x00", b"\x01", b"0", b"1"} & set(blobs)
    # Written again with the same value, a flag is a new ciphertext.
    set_flags(world, shielded, shielded=True)
    after = stored_flags(world, shielded.id)[shielded.id]
    assert after[0] != before[shielded.id][0]
    assert len(after[0]) == len(before[shielded.id][0])
    with world.ctx.sessions() as db:
        row = db.get(Child, shielded.id)
        assert row is not None
        assert row.shielded
        assert not row.household_shielded


def test_any_change_to_a_child_seals_both_flags_afresh(world: World) -> None:
    # Two copies taken before and after a shield then differ as for any other change.
    child = world.child()
    before = stored_flags(world, child.id)[child.id]
    set_flags(world, child, household_shielded=True)
    after = stored_flags(world, child.id)[child.id]
    assert after[0] != before[0]
    assert after[1] != before[1]


def test_a_postcode_search_leaves_out_protected_children_unless_the_caller_manages_them(
    world: World,
) -> None:
    family = unique_name()
    postcode = "PR9 1ZY"
    shielded = world.child(family_name=family, postcode=postcode, shielded=True)
    household = world.child(family_name=family, postcode=postcode)
    set_flags(world, household, household_shielded=True)
    open_child = world.child(family_name=family, postcode=postcode)
    everyone = {shielded.id, household.id, open_child.id}

    practitioner = principal(world, Role.HEALTH_PRACTITIONER)
    assert search(world, practitioner, family, postcode=postcode) == {open_child.id}
    # Without the hidden field, or with shielding off, a search finds them all.
    assert search(world, practitioner, family, postcode=None) == everyone
    assert search(world, practitioner, family, postcode=postcode, shielding=False) == everyone
    # The LA's own data managers broker contact: they find them; another LA's do not.
    own = principal(world, Role.LA_DATA_MANAGER)
    assert search(world, own, family, postcode=postcode) == everyone
    other = principal(world, Role.LA_DATA_MANAGER, LA_B)
    assert search(world, other, family, postcode=postcode) == {open_child.id}


def test_protected_children_never_crowd_out_the_ones_a_search_may_return(world: World) -> None:
    family = unique_name()
    postcode = "PR9 2ZY"
    for _ in range(9):
        world.child(family_name=family, postcode=postcode, shielded=True)
    opened = {world.child(family_name=family, postcode=postcode).id for _ in range(2)}
    practitioner = principal(world, Role.HEALTH_PRACTITIONER)
    # Nine protected matches read first would fill any window of the limit: all open ones
    # still come back, and fewer than the limit means no more exist.
    assert search(world, practitioner, family, postcode=postcode, limit=3) == opened
    assert search(world, practitioner, family, postcode=postcode, limit=2) == opened
    third = world.child(family_name=family, postcode=postcode).id
    # More open matches than the limit: the limit's worth of them (the caller is told to refine).
    found = search(world, practitioner, family, postcode=postcode, limit=2)
    assert len(found) == 2
    assert found <= opened | {third}


def test_the_household_seeds_are_every_shielded_child(world: World) -> None:
    shielded = world.child(postcode=APART, shielded=True)
    open_child = world.child()
    with world.ctx.sessions() as db:
        seeds = set(repository.shielded_ids(db))
    assert shielded.id in seeds
    assert open_child.id not in seeds


def test_an_export_scope_leaves_out_shielded_children_and_their_households(world: World) -> None:
    # A date of birth of their own puts these three alone in the scope.
    born = "2013-02-03"
    shielded = world.child(postcode=APART, shielded=True, date_of_birth=born)
    household = world.child(date_of_birth=born)
    set_flags(world, household, household_shielded=True)
    open_child = world.child(date_of_birth=born)
    scope = exports.Scope(
        local_authority_id=world.la_ids[LA_A],
        organisation_id=None,
        date_of_birth_bidx=[world.ctx.crypto.index.date(born)],
        today=world.clock.now().date(),
    )
    with world.ctx.sessions() as db:
        ids = exports.scope_ids(db, scope)
        assert open_child.id in ids
        assert not {shielded.id, household.id} & set(ids)
        assert exports.count_scope(db, scope) == len(ids)
        assert [c.id for c in exports.scope_children(db, scope)] == ids


def test_a_childs_times_keep_only_the_day(world: World) -> None:
    headers = world.headers(Role.LA_DATA_MANAGER)
    made = world.client.post(
        "/api/v1/children",
        json={
            "given_name": "Ada",
            "family_name": unique_name(),
            "date_of_birth": "2016-05-06",
            "gender": "female",
            "address": {"line1": "1 Mill Lane", "town": "Preston", "postcode": "PR9 3ZY"},
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    child_id = made.json()["child_id"]
    shield = world.client.post(
        f"/api/v1/children/{child_id}/shield", json={"shielded": True}, headers=headers
    )
    assert shield.status_code == 200, shield.text
    today = world.clock.now().astimezone(UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    with world.ctx.sessions() as db:
        child = db.get(Child, child_id)
        assert child is not None
        assert child.shielded
        assert (child.created_at, child.updated_at) == (midnight, midnight)
