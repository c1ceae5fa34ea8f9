"""A purge deletes the child's involvements and carer links itself: their child reference is
sealed, so no foreign key cascades from the children any more."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text

from reference_app.carers.models import ChildCarer
from reference_app.retention import repository
from reference_app.retention.service import run, years_before
from reference_app.services.models import Involvement, OrganisationKind
from tests.fixtures.world import PrivateWorld


def stored_rows(world: PrivateWorld, table: str) -> int:
    """Rows of ``table`` as a copy of the database counts them, without the keys."""
    with world.ctx.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def linked(world: PrivateWorld, child_id: str) -> tuple[int, int]:
    """The child's involvements and carer links, found by its (sealed) id."""
    with world.ctx.sessions() as db:
        involvements = db.scalar(
            select(func.count()).select_from(Involvement).where(Involvement.child_id == child_id)
        )
        carers = db.scalar(
            select(func.count()).select_from(ChildCarer).where(ChildCarer.child_id == child_id)
        )
    return int(involvements or 0), int(carers or 0)


def test_a_purge_deletes_the_childs_involvements_and_carer_links(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    today = world.clock.now().date()
    child = world.child(date_of_birth=years_before(today, 18).isoformat())
    sibling = world.child(date_of_birth=years_before(today, 6).isoformat())
    world.involve(child, OrganisationKind.GP_PRACTICE)
    world.involve(child, OrganisationKind.SEXUAL_HEALTH_SERVICE, consent=True)
    world.involve(sibling, OrganisationKind.SCHOOL)
    with world.ctx.sessions() as db, db.begin():
        [shared] = db.scalars(select(ChildCarer.carer_id).where(ChildCarer.child_id == sibling.id))
        db.add(ChildCarer(child_id=child.id, carer_id=shared, relationship="mother"))
    assert linked(world, child.id) == (2, 2)
    assert (stored_rows(world, "involvements"), stored_rows(world, "child_carers")) == (3, 3)

    assert run(world.ctx).archived == 1
    world.clock.advance(timedelta(days=6 * 366 + 2).total_seconds())
    report = run(world.ctx)

    assert (report.purged, report.carers_purged) == (1, 1)  # the shared carer stays
    assert linked(world, child.id) == (0, 0)
    assert linked(world, sibling.id) == (1, 1)
    # Nothing left behind that only the keys could attribute: the raw rows are the sibling's.
    assert (stored_rows(world, "involvements"), stored_rows(world, "child_carers")) == (1, 1)


def test_a_purge_leaves_the_links_of_a_record_no_longer_due(private_world: PrivateWorld) -> None:
    """A record reinstated after the sweep picked it is not purged, and keeps its links."""
    world = private_world
    child = world.child()
    world.involve(child, OrganisationKind.GP_PRACTICE)
    with world.ctx.sessions() as db, db.begin():
        purged = repository.purge(db, [child.id], world.clock.now())
    assert purged == ([], 0)
    assert linked(world, child.id) == (1, 1)
