"""The SQLite database file holds personal data: created owner-only (0600), and tightened if an
existing one is open to the group or others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from reference_app.kit.db import make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> object:
    """A permissive umask, as a careless service unit might leave it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_a_new_database_file_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert mode(path) == 0o600
        wal = tmp_path / "registry.db-wal"
        assert wal.exists()
        assert mode(wal) == 0o600
    finally:
        engine.dispose()


def test_an_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.touch()
    path.chmod(0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_an_owner_only_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.touch()
    path.chmod(0o400)
    make_engine(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o400


def test_memory_databases_make_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    assert list(tmp_path.iterdir()) == []
