"""A state change of an export happens once, even when two requests race for it."""

from __future__ import annotations

import threading

import pytest

from reference_app.exports import service
from reference_app.exports.models import ExportRequest
from reference_app.exports.repository import transition
from tests.fixtures.exports import act, events, flow, manager
from tests.fixtures.stale import principal_of, read, refused, stale_call
from tests.fixtures.world import World


def test_two_downloads_at_the_same_moment_serve_one(world: World) -> None:
    f = flow(world, 1).through_link()
    seen: list[tuple[str, bool]] = []

    def second() -> None:
        with world.ctx.sessions() as db, db.begin():
            export = db.get(ExportRequest, f.export_id)
            assert export is not None
            # On PostgreSQL this read sees 'approved': the first has not committed yet.
            status = export.status
            seen.append((status, transition(db, export, "approved", status="downloaded")))

    with world.ctx.sessions() as first:
        first.begin()
        export = first.get(ExportRequest, f.export_id)
        assert export is not None
        assert transition(first, export, "approved", status="downloaded")
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(0.5)  # let it reach the row lock (on SQLite, the write lock) before we commit
        first.commit()
    racer.join()
    [(_status, moved)] = seen
    assert moved is False
    second_try = f.download()
    assert second_try.status_code == 410
    assert second_try.json()["error"]["code"] == "export_already_downloaded"


@pytest.mark.parametrize("meanwhile", ["refuse", "approve"])
def test_an_approval_read_before_another_decision_is_refused(world: World, meanwhile: str) -> None:
    f = flow(world, 1)
    assert f.request().status_code == 201
    late = manager(world)
    with stale_call(world) as call:
        seen = read(call, service.own, principal_of(world, late.account), f.export_id)
        assert seen.status == "requested"  # held: a session maps its rows weakly
        other = f.requester if meanwhile == "refuse" else f.approver  # a withdrawal, or approval
        assert act(world, other, f.export_id, meanwhile, json={}).status_code == 200
        stale = service.approve
        assert refused(call, stale, principal_of(world, late.account), f.export_id) == (
            409,
            "export_not_pending",
        )
    approvals = [
        e for e in events(world, "export:approved") if e["details"]["export_id"] == f.export_id
    ]
    assert len(approvals) == (1 if meanwhile == "approve" else 0)
