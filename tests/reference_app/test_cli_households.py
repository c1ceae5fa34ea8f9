"""`contactpoint db refresh-households`: rows loaded without the household flag are flagged."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from reference_app.carers.models import ChildCarer
from reference_app.children.models import Child
from reference_app.cli import main
from tests.fixtures.world import PrivateWorld


def _protected(world: PrivateWorld, child_id: str) -> bool:
    with world.ctx.sessions() as db:
        child = db.get(Child, child_id)
        assert child is not None
        return child.household_shielded


def test_refresh_households_flags_a_relative_loaded_without_the_flag(
    private_world: PrivateWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = private_world
    monkeypatch.setenv("CONTACTPOINT_KEYS_FILE", str(world.keys_file))
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "test")
    shielded = world.child(shielded=True)
    relative = world.child()
    with world.ctx.sessions() as db, db.begin():
        # As a bulk load writes it: the link is there, the flag was never computed.
        carer_id = db.scalar(select(ChildCarer.carer_id).where(ChildCarer.child_id == shielded.id))
        assert carer_id is not None
        db.add(ChildCarer(child_id=relative.id, carer_id=carer_id, relationship="father"))
    assert not _protected(world, relative.id)
    result = CliRunner().invoke(
        main, ["db", "refresh-households", "--database", world.database.app_url]
    )
    assert result.exit_code == 0, result.output
    assert "households of 1 shielded children recomputed" in result.stdout
    assert _protected(world, relative.id)
