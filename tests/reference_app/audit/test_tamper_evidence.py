"""The audit log detects and names each kind of tampering (RFC 9162 log, signed checkpoints)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reference_app.audit.service import RequestInfo, checkpoint_document, record, seal_all
from reference_app.audit.tags import EventTag
from reference_app.audit.verify import FindingKind, VerifyReport, verify_log
from reference_app.context import AppContext
from reference_app.kit.db import make_engine, normalise_url, snapshot
from reference_app.kit.keys import generate_document, parse_document
from reference_app.kit.sealing import Sealer, bind
from tests.fixtures.database import Database, make_context

INFO = RequestInfo(request_id="r", source="127.0.0.1")
BATCHES = (12, 10, 8)  # three checkpoints over 30 events


@dataclass
class Trail:
    ctx: AppContext
    owner: Engine
    database: Database
    keys_doc: dict
    witness: list[dict]

    def verify(self, *, witness: bool = False) -> VerifyReport:
        with self.ctx.sessions() as db:
            return verify_log(
                db,
                self.ctx.keyring.audit_public_keys,
                now=self.ctx.clock.now(),
                witness=self.witness if witness else (),
            )

    def tamper(self, *statements: str) -> None:
        """Run SQL as the database owner, switching off the append-only triggers first."""
        with self.owner.begin() as conn:
            if self.owner.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                conn.execute(text(statement))

    def event_at(self, seq: int) -> int:
        with self.owner.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT event_id FROM audit_log_entries WHERE seq = {seq}")
                ).scalar_one()
            )


@pytest.fixture
def trail(fresh_database: Database) -> Iterator[Trail]:
    doc = generate_document()
    ctx = make_context(fresh_database, parse_document(doc))
    witness = []
    for size in BATCHES:
        with ctx.sessions() as db, db.begin():
            for n in range(size):
                record(
                    db,
                    ctx,
                    EventTag.CHILD_RECORD_VIEWED,
                    info=INFO,
                    actor_id=n,
                    child_id=f"C{n:012d}",
                    reason_code="safeguarding",
                    details={"fields": ["given_name"], "n": n},
                )
        seal_all(ctx)
        with ctx.sessions() as db:
            from reference_app.audit.repository import latest_checkpoint

            cp = latest_checkpoint(db)
            assert cp is not None
            witness.append(checkpoint_document(cp))
    owner = make_engine(fresh_database.owner_url)
    yield Trail(ctx, owner, fresh_database, doc, witness)
    owner.dispose()
    ctx.engine.dispose()


def kinds(report: VerifyReport) -> list[tuple[FindingKind, int | None]]:
    return [(f.kind, f.seq) for f in report.findings]


def test_an_untouched_log_verifies(trail: Trail) -> None:
    report = trail.verify(witness=True)
    assert report.ok, report.findings
    assert (report.checkpoints, report.tree_size, report.entries) == (3, 30, 30)


def test_an_edited_entry_is_named(trail: Trail) -> None:
    trail.tamper(
        f"UPDATE audit_events SET reason_code = 'service_delivery' WHERE id = {trail.event_at(13)}"
    )
    assert kinds(trail.verify()) == [(FindingKind.EDITED, 13)]


def test_an_altered_sealed_child_id_is_named_as_an_edit(trail: Trail) -> None:
    # The child id is stored sealed: without the keys one can only copy another event's token
    # or write bytes of one's own. Each is an edit of what was signed, named as one, and does
    # not stop the check.
    copied, garbled = trail.event_at(3), trail.event_at(5)
    junk = "X'00ff'" if trail.owner.dialect.name == "sqlite" else "'\\x00ff'::bytea"
    trail.tamper(
        f"UPDATE audit_events SET child_id = (SELECT child_id FROM audit_events "
        f"WHERE id = {trail.event_at(4)}) WHERE id = {copied}",
        f"UPDATE audit_events SET child_id = {junk} WHERE id = {garbled}",
    )
    assert kinds(trail.verify()) == [(FindingKind.EDITED, 3), (FindingKind.EDITED, 5)]


def test_a_deleted_event_is_named(trail: Trail) -> None:
    event = trail.event_at(5)
    trail.tamper(f"DELETE FROM audit_events WHERE id = {event}")
    report = trail.verify()
    assert kinds(report) == [(FindingKind.DELETED, 5)]
    assert report.findings[0].event_id == event


def test_a_deleted_and_renumbered_entry_is_named(trail: Trail) -> None:
    event = trail.event_at(7)
    trail.tamper(
        "DELETE FROM audit_log_entries WHERE seq = 7",
        f"DELETE FROM audit_events WHERE id = {event}",
        "UPDATE audit_log_entries SET seq = seq - 1 WHERE seq > 7",
    )
    assert kinds(trail.verify()) == [(FindingKind.DELETED, 7)]


def test_an_inserted_entry_is_named(trail: Trail) -> None:
    occurred = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" ")
    trail.tamper(
        "UPDATE audit_log_entries SET seq = seq + 1000 WHERE seq >= 20",
        "UPDATE audit_log_entries SET seq = seq - 999 WHERE seq >= 1000",
        f"INSERT INTO audit_events (id, occurred_at, tag, outcome, details) VALUES "
        f"(999999, '{occurred}', 'auth:logout', 'allowed', '{{}}')",
        "INSERT INTO audit_log_entries (seq, event_id) VALUES (20, 999999)",
    )
    report = trail.verify()
    assert (FindingKind.INSERTED, 20) in kinds(report)
    assert {k for k, _ in kinds(report)} == {FindingKind.INSERTED}


def test_reordered_entries_are_named(trail: Trail) -> None:
    first, second = trail.event_at(3), trail.event_at(4)
    trail.tamper(
        "UPDATE audit_log_entries SET event_id = -1 WHERE seq = 3",
        f"UPDATE audit_log_entries SET event_id = {first} WHERE seq = 4",
        f"UPDATE audit_log_entries SET event_id = {second} WHERE seq = 3",
    )
    assert sorted(kinds(trail.verify()), key=lambda k: k[1] or 0) == [
        (FindingKind.REORDERED, 3),
        (FindingKind.REORDERED, 4),
    ]


def test_a_truncated_tail_is_named(trail: Trail) -> None:
    trail.tamper(
        "DELETE FROM audit_events WHERE id IN "
        "(SELECT event_id FROM audit_log_entries WHERE seq >= 26)",
        "DELETE FROM audit_log_entries WHERE seq >= 26",
    )
    assert kinds(trail.verify()) == [(FindingKind.TRUNCATED, 26)]


def test_truncation_with_its_checkpoints_needs_the_witness(trail: Trail) -> None:
    trail.tamper(
        "DELETE FROM audit_events WHERE id IN "
        "(SELECT event_id FROM audit_log_entries WHERE seq >= 22)",
        "DELETE FROM audit_log_entries WHERE seq >= 22",
        "DELETE FROM audit_checkpoints WHERE tree_size = 30",
    )
    # Cutting the last batch with its checkpoint leaves a consistent shorter log: only a copy
    # of the checkpoint kept off the host can tell (hence `audit checkpoint` and the witness).
    assert trail.verify().ok
    assert kinds(trail.verify(witness=True)) == [(FindingKind.TRUNCATED, 22)]


def test_a_forged_checkpoint_is_named(trail: Trail) -> None:
    with trail.owner.connect() as conn:
        blob = bytes(
            conn.execute(
                text("SELECT leaf_hashes FROM audit_checkpoints WHERE tree_size = 22")
            ).scalar_one()
        )
    forged = bytes([blob[0] ^ 1]) + blob[1:]
    trail.tamper(
        f"UPDATE audit_checkpoints SET leaf_hashes = "
        f"{'X' if trail.owner.dialect.name == 'sqlite' else 'decode('}'{forged.hex()}'"
        f"{'' if trail.owner.dialect.name == 'sqlite' else ', ' + repr('hex') + ')'} "
        f"WHERE tree_size = 22"
    )
    found = {k for k, _ in kinds(trail.verify())}
    assert FindingKind.CHECKPOINT_ROOT in found


def test_a_rewritten_log_disagrees_with_the_witness(trail: Trail) -> None:
    trail.tamper("DELETE FROM audit_checkpoints")
    report = trail.verify(witness=True)
    assert FindingKind.TRUNCATED in {k for k, _ in kinds(report)}


def test_an_event_slipped_in_behind_the_log_is_reported(trail: Trail) -> None:
    occurred = (datetime.now(UTC) - timedelta(hours=2)).replace(tzinfo=None).isoformat(sep=" ")
    trail.tamper(
        f"INSERT INTO audit_events (id, occurred_at, tag, outcome, details) VALUES "
        f"(888888, '{occurred}', 'auth:logout', 'allowed', '{{}}')"
    )
    report = trail.verify()
    assert [(f.kind, f.event_id) for f in report.findings] == [(FindingKind.UNSEALED, 888888)]


def test_cli_verify_exits_1_and_names_the_place(trail: Trail, tmp_path: Path) -> None:
    from reference_app.cli import main

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(trail.keys_doc))
    env = {
        "CONTACTPOINT_KEYS_FILE": str(keys),
        "CONTACTPOINT_ENVIRONMENT": "test",
        "CONTACTPOINT_DATABASE_URL": trail.database.app_url,
    }
    runner = CliRunner()
    clean = runner.invoke(main, ["audit", "verify"], env=env)
    assert clean.exit_code == 0, clean.output
    assert "audit log intact" in clean.output
    trail.tamper(f"UPDATE audit_events SET actor_id = 4242 WHERE id = {trail.event_at(2)}")
    tampered = runner.invoke(main, ["audit", "verify", "--json"], env=env)
    assert tampered.exit_code == 1
    report = json.loads(tampered.output)
    assert report["findings"][0]["kind"] == "edited"
    assert report["findings"][0]["seq"] == 2


def test_concurrent_writers_and_sealer_leave_a_verifiable_log(trail: Trail) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                with trail.ctx.sessions() as db, db.begin():
                    # Read, then write, as every audited request does: on SQLite a deferred
                    # transaction fails here when the sealer commits in between.
                    db.execute(text("SELECT count(*) FROM audit_pending")).scalar_one()
                    record(
                        db,
                        trail.ctx,
                        EventTag.CHILD_SEARCH_PERFORMED,
                        info=INFO,
                        actor_id=n,
                        details={"i": i},
                    )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def sealer() -> None:
        while not stop.is_set():
            # A racing sealer that loses leaves its batch for the next pass.
            with contextlib.suppress(DBAPIError):
                seal_all(trail.ctx)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    seal_thread = threading.Thread(target=sealer)
    seal_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    seal_thread.join()
    seal_all(trail.ctx)
    assert not errors
    report = trail.verify(witness=True)
    assert report.ok, report.findings
    assert report.tree_size == 30 + 4 * 40
    assert report.pending == 0


@pytest.mark.parametrize("engine_kind", ["registry", "plain"])
def test_a_verify_reads_the_log_as_at_one_moment(trail: Trail, engine_kind: str) -> None:
    # The verifier reads checkpoints, then the entries they sign: a seal committed between the
    # two reads must not be seen by the second alone (it was, once, as a signed-but-missing
    # position). Both the registry's read-only engine and a plain one (as the harness opens)
    # are checked, each holding the keys that open the trail's child ids (as `audit verify`'s
    # reader and the harness's do).
    url = trail.database.owner_url
    reader = (
        make_engine(url, read_only=True)
        if engine_kind == "registry"
        else create_engine(normalise_url(url))
    )
    bind(reader, Sealer.of(trail.ctx.keyring))
    count = "SELECT count(*) FROM audit_log_entries"
    try:
        with snapshot(reader) as conn:
            before = conn.execute(text(count)).scalar_one()
            with trail.ctx.sessions() as db, db.begin():
                record(db, trail.ctx, EventTag.CHILD_SEARCH_PERFORMED, info=INFO, actor_id=1)
            assert seal_all(trail.ctx) == 1
            assert conn.execute(text(count)).scalar_one() == before
        with snapshot(reader) as conn:
            assert conn.execute(text(count)).scalar_one() == before + 1
            with Session(bind=conn) as db:
                report = verify_log(
                    db, trail.ctx.keyring.audit_public_keys, now=trail.ctx.clock.now()
                )
            assert report.ok, report.findings
    finally:
        reader.dispose()


# Database roles exist on PostgreSQL only; on SQLite the log's proofs stand alone.
@pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_app_role_cannot_change_or_delete_the_trail(trail: Trail) -> None:
    for statement in (
        "UPDATE audit_events SET tag = 'x'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_log_entries",
        "UPDATE audit_checkpoints SET key_id='x'",
        "TRUNCATE audit_events CASCADE",
    ):
        with (
            pytest.raises(DBAPIError, match=r"permission denied|append-only"),
            trail.ctx.engine.begin() as conn,
        ):
            conn.execute(text(statement))
    # Even the owner is stopped by the append-only triggers unless they are switched off.
    with pytest.raises(DBAPIError, match=r"append-only"), trail.owner.begin() as conn:
        conn.execute(text("DELETE FROM audit_log_entries"))
