"""A copy of the database cannot tie an involvement or a carer link to its child: the stored
rows hold neither the child's id nor any value of its ``children`` row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from reference_app.carers.models import ChildCarer
from reference_app.children.models import Child
from reference_app.kit.sealing import stored_table
from reference_app.services.models import Involvement, OrganisationKind
from tests.fixtures.world import World


def _cells(row: Any) -> list[bytes]:
    """The row's text and binary values, as bytes (numbers, dates and yes/no are shared by
    many rows and tie nothing to one child)."""
    cells = []
    for value in row:
        if isinstance(value, str):
            cells.append(value.encode())
        elif isinstance(value, bytes | memoryview):
            cells.append(bytes(value))
    return cells


def test_stored_links_hold_nothing_of_the_childs_row(world: World) -> None:
    child = world.child()
    sibling = world.child()
    involvement = world.involve(child, OrganisationKind.SEXUAL_HEALTH_SERVICE, consent=True)
    world.involve(sibling, OrganisationKind.SEXUAL_HEALTH_SERVICE, consent=True)
    with world.ctx.sessions() as db:
        [carer_id] = db.scalars(select(ChildCarer.carer_id).where(ChildCarer.child_id == child.id))
    children, involvements, child_carers = (
        stored_table(model.__table__)  # type: ignore[arg-type]
        for model in (Child, Involvement, ChildCarer)
    )
    with world.ctx.engine.connect() as conn:
        own = conn.execute(select(children).where(children.c.id == child.id)).one()
        stored = [
            *conn.execute(select(involvements).where(involvements.c.id == involvement)),
            *conn.execute(select(child_carers).where(child_carers.c.carer_id == carer_id)),
        ]
    assert len(stored) == 2
    held = {cell for cell in _cells(own) if len(cell) >= 4}
    assert child.id.encode() in held  # the check can see a match
    for row in stored:
        for cell in _cells(row):
            assert cell not in held
            assert child.id.encode() not in cell
    # Each table seals the child differently: the two rows cannot be joined to each other.
    first, second = (bytes(row._mapping["child_id"]) for row in stored)
    assert first != second
    # Still found by child through the keys, as the record view finds them.
    with world.ctx.sessions() as db:
        found = db.scalars(select(Involvement.id).where(Involvement.child_id == child.id))
        assert list(found) == [involvement]
