"""A state change of an export happens once, even when two requests race for it."""

from __future__ import annotations

import threading

from reference_app.exports.models import ExportRequest
from reference_app.exports.repository import transition
from tests.fixtures.exports import flow
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
