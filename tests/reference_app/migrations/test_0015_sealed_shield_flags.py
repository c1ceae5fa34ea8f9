"""Migration 0015: existing shield flags are sealed with the instance's keys, and a child's
created and updated times cut to the day; without the keys a populated registry is refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reference_app.children.models import Child
from reference_app.kit.db import make_engine
from reference_app.kit.keys import Keyring
from reference_app.kit.migrate import alembic_config, current_revision, upgrade
from reference_app.kit.sealing import Sealer, bind
from tests.fixtures.database import BACKENDS

MOMENT = "2026-03-04 13:45:12.345678"
# id: (shielded, household_shielded)
FLAGS = {"C1": (True, False), "C2": (False, True), "C3": (False, False)}


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    admin_url = request.getfixturevalue("postgres_server")
    name = f"cp_test_{secrets.token_hex(5)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _populate(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, "0014")
        blob = "'\\x00'::bytea" if engine.dialect.name == "postgresql" else "x'00'"
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO local_authorities (id, ons_code, name, region) "
                    "VALUES (1, 'E99999999', 'Testshire', 'North West')"
                )
            )
            for child_id, (shielded, household) in FLAGS.items():
                conn.execute(
                    text(
                        "INSERT INTO children (id, local_authority_id, gender, given_name_enc, "
                        "family_name_enc, date_of_birth_enc, address_enc, given_name_bidx, "
                        "family_name_bidx, family_name_phonetic_bidx, date_of_birth_bidx, "
                        "postcode_bidx, shielded, household_shielded, created_at, updated_at) "
                        f"VALUES (:id, 1, 'female', {', '.join([blob] * 9)}, :s, :h, :t, :t)"
                    ),
                    {"id": child_id, "s": shielded, "h": household, "t": MOMENT},
                )
    finally:
        engine.dispose()


def test_without_the_keys_a_populated_registry_is_refused_and_left_as_it_was(
    empty_url: str,
) -> None:
    _populate(empty_url)
    engine = make_engine(empty_url)
    try:
        with pytest.raises(RuntimeError, match="CONTACTPOINT_KEYS_FILE"):
            upgrade(engine)
        assert current_revision(engine) == "0014"
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, shielded FROM children ORDER BY id")).all()
        assert [(r[0], bool(r[1])) for r in rows] == [(k, v[0]) for k, v in FLAGS.items()]
    finally:
        engine.dispose()


def test_the_upgrade_seals_every_flag_and_cuts_the_times_to_the_day(
    empty_url: str, keyring: Keyring
) -> None:
    _populate(empty_url)
    engine = make_engine(empty_url)
    bind(engine, Sealer.of(keyring))
    try:
        upgrade(engine, "0015")
        with Session(engine) as db:
            children = db.scalars(select(Child).order_by(Child.id)).all()
            read = {c.id: (c.shielded, c.household_shielded) for c in children}
            times = {(c.created_at, c.updated_at) for c in children}
        assert read == FLAGS
        day = datetime(2026, 3, 4, tzinfo=UTC)
        assert times == {(day, day)}
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT shielded, household_shielded FROM children")
            blobs = [bytes(value) for row in stored for value in row]
        # Ciphertexts of one length, none alike, none a clear boolean.
        assert len({len(b) for b in blobs}) == 1
        assert len(set(blobs)) == len(blobs) == 2 * len(FLAGS)
        assert not {b"\x00", b"\x01", b"0", b"1", b"t", b"f"} & set(blobs)

        # And back: the flags open again into booleans (the times stay at the day).
        config = alembic_config(engine)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0014")
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, shielded, household_shielded FROM children ORDER BY id")
            ).all()
        assert {r[0]: (bool(r[1]), bool(r[2])) for r in rows} == FLAGS
    finally:
        engine.dispose()


def test_an_empty_registry_upgrades_without_keys(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0015")
        assert current_revision(engine) == "0015"
    finally:
        engine.dispose()
