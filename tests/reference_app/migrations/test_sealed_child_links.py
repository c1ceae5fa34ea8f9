"""Migration 0016: a populated registry's involvements and carer links get sealed child
references, read back through the ORM, with no clear id left in the stored rows."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from reference_app.carers.models import ChildCarer
from reference_app.kit.db import make_engine
from reference_app.kit.keys import Keyring
from reference_app.kit.migrate import alembic_config, upgrade
from reference_app.kit.sealing import Sealer, bind, stored_table
from reference_app.services.models import Involvement
from tests.fixtures.database import BACKENDS

CHILDREN = ("CP0000000001A", "CP0000000002B")


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no schema yet, on each backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    admin_url = request.getfixturevalue("postgres_server")
    name = f"cp_test_{secrets.token_hex(5)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _populate_at_0014(engine: Engine) -> None:
    upgrade(engine, "0014")
    blob, when = b"\x00", datetime(2026, 1, 1, tzinfo=UTC)
    child = {
        "local_authority_id": 1,
        "gender": "female",
        **dict.fromkeys(
            (
                "given_name_enc",
                "family_name_enc",
                "date_of_birth_enc",
                "address_enc",
                "given_name_bidx",
                "family_name_bidx",
                "family_name_phonetic_bidx",
                "date_of_birth_bidx",
                "postcode_bidx",
            ),
            blob,
        ),
        "shielded": False,
        "created_at": when,
        "updated_at": when,
    }
    # As stored at 0014: plain child ids, written without the models (which now seal them).
    rows = {
        "local_authorities": [
            {"id": 1, "ons_code": "E99999999", "name": "Testshire", "region": "North West"}
        ],
        "organisations": [{"id": 1, "name": "School", "kind": "school", "local_authority_id": 1}],
        "children": [{"id": c, **child} for c in CHILDREN],
        "carers": [{"id": 1, "given_name_enc": blob, "family_name_enc": blob}],
        "child_carers": [
            {
                "child_id": c,
                "carer_id": 1,
                "relationship": "mother",
                "parental_responsibility": True,
            }
            for c in CHILDREN
        ],
        "involvements": [
            {
                "id": n,
                "child_id": c,
                "organisation_id": 1,
                "started_on": date(2026, 1, 1),
                "is_lead_professional": False,
                "sensitive": False,
                "consent_recorded": False,
                "created_at": when,
            }
            for n, c in enumerate(CHILDREN, start=1)
        ],
    }
    with engine.begin() as conn:
        for name, values in rows.items():
            names = list(values[0])
            statement = text(
                f"INSERT INTO {name} ({', '.join(names)}) "
                f"VALUES ({', '.join(':' + n for n in names)})"
            )
            conn.execute(statement, values)


def _stored(engine: Engine) -> list[bytes]:
    """Every stored child reference of both tables, as a copy of the database holds it."""
    with engine.connect() as conn:
        return [
            bytes(value)
            for table in (Involvement.__table__, ChildCarer.__table__)
            for value in conn.execute(
                select(stored_table(table).c.child_id)  # type: ignore[arg-type]
            ).scalars()
        ]


def test_a_populated_registry_upgrades_to_sealed_links(
    empty_engine: Engine, keyring: Keyring
) -> None:
    _populate_at_0014(empty_engine)
    bind(empty_engine, Sealer.of(keyring))
    upgrade(empty_engine, "0016")
    with Session(empty_engine) as db:
        involved = db.execute(select(Involvement.id, Involvement.child_id)).all()
        links = db.execute(select(ChildCarer.child_id, ChildCarer.carer_id)).all()
        # Still found by child: the index and the primary key hold the tokens.
        found = db.scalars(select(Involvement.id).where(Involvement.child_id == CHILDREN[1]))
        assert list(found) == [2]
        assert db.get(ChildCarer, (CHILDREN[0], 1)) is not None
    assert sorted(tuple(r) for r in involved) == [(1, CHILDREN[0]), (2, CHILDREN[1])]
    assert sorted(tuple(r) for r in links) == [(CHILDREN[0], 1), (CHILDREN[1], 1)]
    stored = _stored(empty_engine)
    assert len(stored) == 4
    for value in stored:
        assert all(child.encode() not in value for child in CHILDREN)
    # The same child has a different token in each table.
    assert len(set(stored)) == 4


def test_a_populated_registry_without_keys_is_refused_and_left_as_it_was(
    empty_engine: Engine,
) -> None:
    _populate_at_0014(empty_engine)
    with pytest.raises(RuntimeError, match="CONTACTPOINT_KEYS_FILE"):
        upgrade(empty_engine, "0016")
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0014"
        held = conn.execute(text("SELECT child_id FROM involvements ORDER BY id")).scalars()
        assert list(held) == list(CHILDREN)


def test_an_empty_registry_upgrades_without_keys(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0016")
    with Session(empty_engine) as db, pytest.raises(StatementError):
        db.execute(select(Involvement).where(Involvement.child_id == CHILDREN[0])).all()


def test_the_downgrade_opens_the_links_again(empty_engine: Engine, keyring: Keyring) -> None:
    _populate_at_0014(empty_engine)
    bind(empty_engine, Sealer.of(keyring))
    upgrade(empty_engine, "0016")
    with empty_engine.connect() as conn:
        if empty_engine.dialect.name == "sqlite":
            # As kit.migrate.upgrade does: a later revision's downgrade rebuilds children, and
            # with foreign keys on, SQLite would cascade the rebuild into the links.
            driver = conn.connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA foreign_keys=OFF")  # outside any transaction, or ignored
        with conn.begin():
            config = alembic_config(empty_engine)
            config.attributes["connection"] = conn
            command.downgrade(config, "0014")
    with empty_engine.connect() as conn:
        involved = conn.execute(text("SELECT child_id FROM involvements ORDER BY id")).scalars()
        assert list(involved) == list(CHILDREN)
        linked = conn.execute(text("SELECT child_id FROM child_carers")).scalars()
        assert sorted(linked) == list(CHILDREN)
