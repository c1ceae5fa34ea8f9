"""Revision 0017 seals the child ids of a populated registry's trail, alerts and requests, and
its log still verifies: the leaves hash the plain ids, which the sealed columns still read."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reference_app.alerts.models import Alert
from reference_app.audit.models import AuditEvent, AuditSearchHit
from reference_app.audit.service import document_leaf, document_of, sign_checkpoint
from reference_app.audit.verify import verify_log
from reference_app.children.models import UnshieldRequest
from reference_app.kit.db import UTCDateTime, make_engine
from reference_app.kit.keys import Keyring, generate_document, parse_document, write_keys_file
from reference_app.kit.merkle import CompactRange
from reference_app.kit.migrate import alembic_config, current_revision, upgrade
from reference_app.kit.sealing import Sealer, bind, stored_table
from reference_app.requests.models import ChangeRequest
from tests.fixtures.database import Database

BEFORE, AFTER = "0014", "0017"
SEEN, FOUND, OTHER = "C000000000001", "C000000000002", "C000000000003"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MOMENTS = {"occurred_at", "created_at", "updated_at", "raised_at", "requested_at", "signed_at"}


@pytest.fixture
def empty_url(database: Database, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, on the backend of ``database``."""
    if database.backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin = create_engine(request.getfixturevalue("postgres_server"), isolation_level="AUTOCOMMIT")
    name = f"cp_test_{secrets.token_hex(5)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _table(name: str, *columns: tuple[str, Any]) -> sa.TableClause:
    return sa.table(name, *(sa.column(n, t) for n, t in columns))


EVENTS = _table(
    "audit_events",
    ("id", sa.Integer()),
    ("occurred_at", UTCDateTime()),
    ("tag", sa.String()),
    ("outcome", sa.String()),
    ("actor_id", sa.Integer()),
    ("actor_role", sa.String()),
    ("actor_organisation_id", sa.Integer()),
    ("actor_local_authority_id", sa.Integer()),
    ("source", sa.String()),
    ("request_id", sa.String()),
    ("child_id", sa.String()),
    ("reason_code", sa.String()),
    ("relationship", sa.String()),
    ("details", sa.Text()),
)


def _event(
    event_id: int, tag: str, child_id: str | None, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "occurred_at": AT + timedelta(seconds=event_id),
        "tag": tag,
        "outcome": "allowed",
        "actor_id": 1,
        "actor_role": "health_practitioner",
        "actor_organisation_id": 1,
        "actor_local_authority_id": 1,
        "source": "127.0.0.1",
        "request_id": f"r{event_id}",
        "child_id": child_id,
        "reason_code": "safeguarding" if tag == "child:record:viewed" else None,
        "relationship": None,
        "details": json.dumps(details, sort_keys=True, separators=(",", ":")),
    }


def populate(engine: Engine, keyring: Keyring) -> list[dict[str, Any]]:
    """A registry at 0014 with a view, a search, an event about no child, all sealed into the
    log and signed as 0014 did; alerts, an unshield and a change request naming children."""
    blob = b"\x00"
    events = [
        _event(1, "child:record:viewed", SEEN, {"fields": ["given_name"]}),
        _event(
            2,
            "child:search:performed",
            None,
            {"matched": 2, "refine_search": False, "result_ids": [SEEN, FOUND]},
        ),
        _event(3, "auth:login", None, {}),
        _event(4, "alert:raised", SEEN, {"alert_id": 1}),
    ]
    leaves = [document_leaf(document_of(e)) for e in events]
    frontier = CompactRange()
    frontier.extend(leaves)
    key_id = keyring.audit_key_current
    signature = sign_checkpoint(
        keyring.audit_signing_keys[key_id], frontier.size, frontier.root(), AT
    )
    practitioner = {
        "id": 1,
        "username": "u1",
        "display_name_enc": blob,
        "role": "la_data_manager",
        "organisation_id": 1,
        "local_authority_id": 1,
        "password_hash": "x",
        "totp_secret_enc": blob,
        "status": "active",
        "authz_version": 1,
        "created_at": AT,
    }
    child = {
        "local_authority_id": 1,
        "gender": "female",
        **{
            f"{name}": blob
            for name in (
                "given_name_enc",
                "family_name_enc",
                "date_of_birth_enc",
                "address_enc",
                "given_name_bidx",
                "family_name_bidx",
                "family_name_phonetic_bidx",
                "date_of_birth_bidx",
                "postcode_bidx",
            )
        },
        "shielded": True,
        "created_at": AT,
        "updated_at": AT,
    }
    rows: list[tuple[str, list[dict[str, Any]]]] = [
        ("local_authorities", [{"id": 1, "ons_code": "E99999999", "name": "T", "region": "R"}]),
        ("organisations", [{"id": 1, "name": "O", "kind": "school", "local_authority_id": 1}]),
        ("practitioners", [practitioner]),
        ("children", [{"id": SEEN, **child}, {"id": FOUND, **child}]),
        ("audit_events", events),
        (
            "audit_search_hits",
            [{"child_id": SEEN, "event_id": 2}, {"child_id": FOUND, "event_id": 2}],
        ),
        ("audit_log_entries", [{"seq": i, "event_id": e["id"]} for i, e in enumerate(events)]),
        (
            "audit_checkpoints",
            [
                {
                    "tree_size": frontier.size,
                    "first_seq": 0,
                    "root_hash": frontier.root(),
                    "leaf_hashes": b"".join(leaves),
                    "frontier": frontier.to_bytes(),
                    "signed_at": AT,
                    "key_id": key_id,
                    "signature": signature,
                }
            ],
        ),
        (
            "alerts",
            [
                {"id": 1, "child_id": SEEN, "audit_event_id": 1},
                {"id": 2, "child_id": None, "audit_event_id": None},
                # A purged child's alert: no child row to match, sealed all the same.
                {"id": 3, "child_id": OTHER, "audit_event_id": None},
            ],
        ),
        (
            "unshield_requests",
            [
                {
                    "id": 1,
                    "child_id": FOUND,
                    "local_authority_id": 1,
                    "status": "pending",
                    "requested_by": 1,
                    "requested_at": AT,
                }
            ],
        ),
        (
            "change_requests",
            [
                {
                    "id": 1,
                    "child_id": SEEN,
                    "local_authority_id": 1,
                    "kind": "shielding",
                    "raised_by": 1,
                    "raised_at": AT,
                    "justification_enc": blob,
                    "status": "pending",
                }
            ],
        ),
    ]
    alert_defaults = {
        "created_at": AT,
        "kind": "canary_access",
        "severity": "critical",
        "status": "open",
        "subject_user_id": 1,
        "local_authority_id": 1,
        "summary": "s",
        "details": "{}",
    }
    with engine.begin() as conn:
        for name, values in rows:
            if name == "alerts":
                values = [{**alert_defaults, **v} for v in values]
            columns = [(c, UTCDateTime() if c in MOMENTS else None) for c in values[0]]
            target = EVENTS if name == "audit_events" else _table(name, *columns)
            conn.execute(target.insert(), values)
    return events


def stored(engine: Engine, model: Any, key: str) -> list[tuple[Any, bytes | None]]:
    """What a copy of the database holds in ``model``'s child_id column, by ``key``."""
    table = stored_table(model.__table__)
    with engine.connect() as conn:
        rows = conn.execute(select(table.c[key], table.c.child_id)).all()
    return sorted((k, None if v is None else bytes(v)) for k, v in rows)


def test_0017_seals_a_populated_registry_and_its_log_still_verifies(
    empty_url: str, tmp_path: Path
) -> None:
    document = generate_document()
    keyring = parse_document(document)
    engine = make_engine(empty_url)
    try:
        upgrade(engine, BEFORE)
        events = populate(engine, keyring)
        # Without the keys, nothing is changed and the message says how to run it.
        with pytest.raises(RuntimeError, match="CONTACTPOINT_KEYS_FILE"):
            upgrade(engine, AFTER)
        assert current_revision(engine) == BEFORE
        bind(engine, Sealer.of(keyring))
        upgrade(engine, AFTER)
        sealer = Sealer.of(keyring)

        # The registry reads the ids back, and finds rows by them.
        with Session(engine) as db:
            assert {e.id: e.child_id for e in db.scalars(select(AuditEvent))} == {
                e["id"]: e["child_id"] for e in events
            }
            assert db.scalars(select(AuditEvent.id).where(AuditEvent.child_id == SEEN)).all() == [
                1,
                4,
            ]
            hits = select(AuditSearchHit.event_id).where(AuditSearchHit.child_id == FOUND)
            assert db.scalars(hits).all() == [2]
            assert {a.id: a.child_id for a in db.scalars(select(Alert))} == {
                1: SEEN,
                2: None,
                3: OTHER,
            }
            assert db.scalars(
                select(UnshieldRequest.id).where(UnshieldRequest.child_id == FOUND)
            ).all() == [1]
            assert db.scalars(
                select(ChangeRequest.id).where(ChangeRequest.child_id == SEEN)
            ).all() == [1]
            report = verify_log(db, keyring.audit_public_keys, now=AT + timedelta(days=1))
        assert report.ok, report.findings
        assert report.tree_size == len(events)

        # A copy holds each column's token, never the id.
        hits = [(2, SEEN), (2, FOUND)]
        for model, key, expected in (
            (AuditEvent, "id", [(e["id"], e["child_id"]) for e in events]),
            (AuditSearchHit, "event_id", hits),
            (Alert, "id", [(1, SEEN), (2, None), (3, OTHER)]),
            (UnshieldRequest, "id", [(1, FOUND)]),
            (ChangeRequest, "id", [(1, SEEN)]),
        ):
            label = f"{model.__tablename__}.child_id"
            assert stored(engine, model, key) == sorted(
                (k, None if c is None else sealer.ref(c, label)) for k, c in expected
            )
        if engine.dialect.name == "postgresql":
            # The guard lifted for the conversion is back.
            for table in ("audit_events", "audit_search_hits"):
                with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                    conn.execute(text(f"DELETE FROM {table}"))
        # The search's details are hashed as stored: they keep their clear ids (said in 0017).
        with engine.connect() as conn:
            details = conn.execute(text("SELECT details FROM audit_events WHERE id = 2")).scalar()
        assert SEEN in str(details)

        # `audit verify` agrees, from the instance's keys file.
        keys = tmp_path / "keys.json"
        write_keys_file(keys, document)
        from reference_app.cli import main

        result = CliRunner().invoke(
            main,
            ["audit", "verify", "--json"],
            env={
                "CONTACTPOINT_KEYS_FILE": str(keys),
                "CONTACTPOINT_ENVIRONMENT": "test",
                "CONTACTPOINT_DATABASE_URL": empty_url,
            },
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["ok"] is True

        # Going back opens every token into its id again.
        _downgrade(engine, f"{AFTER}-1")
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT id, child_id FROM alerts ORDER BY id")).all()
        assert [(i, c) for i, c in ids] == [(1, SEEN), (2, None), (3, OTHER)]
    finally:
        engine.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
