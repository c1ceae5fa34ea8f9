"""The sealer's cost does not grow a statement per event: a batch of any size is sealed in the
same statements, and on PostgreSQL none of them runs once per event."""

from __future__ import annotations

from reference_app.audit import repository
from reference_app.audit.service import RequestInfo, canonical_details, seal_all
from reference_app.audit.tags import EventTag, Outcome
from tests.fixtures.statements import Sent, sent_to
from tests.fixtures.world import World


def _sealing(world: World, events: int) -> Sent:
    """Seal what is pending, write ``events`` events, and record what sealing them sends."""
    seal_all(world.ctx)
    now = world.ctx.clock.now()
    info = RequestInfo(request_id=None, source="test")
    with world.ctx.sessions() as db, db.begin():
        repository.append_events(
            db,
            [
                {
                    "occurred_at": now,
                    "tag": EventTag.CHILD_SEARCH_PERFORMED.value,
                    "outcome": Outcome.ALLOWED.value,
                    "source": info.source,
                    "request_id": info.request_id,
                    "child_id": None,
                    "details": canonical_details({"n": n}),
                }
                for n in range(events)
            ],
        )
    with sent_to(world.ctx.engine) as sent:
        assert seal_all(world.ctx) == events
    return sent


def test_sealing_a_large_batch_sends_what_a_small_one_does(world: World) -> None:
    small, large = _sealing(world, 3), _sealing(world, 300)
    assert large.count == small.count
    if world.database.backend == "postgresql":
        # Positions and cleared markers go as arrays: no statement is run once per event.
        assert large.executions == small.executions == small.count
