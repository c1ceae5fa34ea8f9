"""A backup restores exactly, on either backend and across them; a damaged file, a wrong key, a
mismatch or a target holding data is refused, and the target is left as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text

import reference_app
from reference_app.audit.service import RequestInfo, record
from reference_app.audit.tags import EventTag
from reference_app.audit.verify import verify_log
from reference_app.backup import snapshot
from reference_app.backup.format import BackupError, BackupFormatError, Rows, TableSpec
from reference_app.backup.restore import RestoreError, restore_backup
from reference_app.backup.snapshot import sqlite_path, write_backup
from reference_app.children.models import Child
from reference_app.kit.agefile import (
    AgeFileError,
    load_identities,
    load_recipients,
    open_sealed,
    seal,
)
from reference_app.kit.db import make_engine
from reference_app.kit.migrate import target_metadata
from reference_app.kit.sealing import stored_table
from reference_app.services.models import Organisation
from tests.fixtures.backup import (
    AWKWARD_NAME,
    BackupSource,
    Targets,
    flip_a_flag,
    new_key_pair,
    table_digests,
    tamper_loader,
)
from tests.fixtures.database import Database, make_context

OTHER = {"sqlite": "postgresql", "postgresql": "sqlite"}
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

# The schema's newest migration, as the backup manifest records it.
HEAD = max(
    p.name.split("_", 1)[0]
    for p in (Path(reference_app.__file__).parent / "migrations" / "versions").glob("0*.py")
)


def target_state(url: str) -> tuple[set[str], set[str], dict[str, tuple[int, str]]] | None:
    """Every table, key and index by name, and each registry table's content.

    None when the SQLite file does not exist.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            names = set(inspector.get_table_names())
            keys = {f"{t}.{i['name']}" for t in names for i in inspector.get_indexes(t)}
            keys |= {f"{t}.{inspector.get_pk_constraint(t)['name']}" for t in names}
            keys |= {f"{t}.{f['name']}" for t in names for f in inspector.get_foreign_keys(t)}
    finally:
        engine.dispose()
    return names, keys, table_digests(url)


def rows_of(url: str, table_name: str) -> list[tuple[Any, ...]]:
    """The table's rows as stored (sealed columns as their bytes: no keys needed)."""
    table = target_metadata.tables[table_name]
    stored = stored_table(table)
    key = [stored.c[c.name] for c in table.primary_key]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(stored).order_by(*key))]
    finally:
        engine.dispose()


def test_the_source_holds_every_kind_of_row(backup_source: BackupSource) -> None:
    manifest = backup_source.result.manifest
    assert [name for name, s in manifest.tables.items() if s.rows == 0] == []
    assert manifest.alembic_revision == HEAD
    assert manifest.dialect == backup_source.backend


@pytest.mark.parametrize("kind", ["migrated", "bare"])
def test_a_restore_equals_the_source(
    backup_source: BackupSource, targets: Targets, kind: str
) -> None:
    url = getattr(targets, kind)(backup_source.backend)
    result = restore_backup(url, backup_source.identity, backup_source.backup)
    assert [c.table for c in result.checks if not c.ok] == []
    assert table_digests(url) == table_digests(backup_source.url)
    for name in ("children", "audit_events", "audit_checkpoints", "organisations", "alerts"):
        assert rows_of(url, name) == rows_of(backup_source.url, name), name


def test_a_backup_restores_into_the_other_backend(
    backup_source: BackupSource, targets: Targets
) -> None:
    url = targets.bare(OTHER[backup_source.backend])
    restore_backup(url, backup_source.identity, backup_source.backup)
    assert table_digests(url) == table_digests(backup_source.url)
    for name in ("children", "involvements", "audit_events", "login_sessions"):
        assert rows_of(url, name) == rows_of(backup_source.url, name), name
    names = [r[1] for r in rows_of(url, "organisations")]
    assert AWKWARD_NAME in names
    # ...and what comes back is the registry: the instance's keys read a child's name.
    ctx = make_context(Database(backend="x", owner_url=url, app_url=url), backup_source.keyring)
    try:
        known = backup_source.generated.sample[0]
        with ctx.sessions() as db:
            child = db.get(Child, known["child_id"])
            assert child is not None
            family = ctx.crypto.cipher.decrypt(child.family_name_enc, "children.family_name")
            report = verify_log(db, ctx.keyring.audit_public_keys, now=ctx.clock.now())
        assert family == known["family_name"]
        assert report.ok, report.findings
    finally:
        ctx.engine.dispose()


def test_new_ids_follow_the_restored_ones(backup_source: BackupSource, targets: Targets) -> None:
    url = targets.bare(backup_source.backend)
    restore_backup(url, backup_source.identity, backup_source.backup)
    ctx = make_context(Database(backend="x", owner_url=url, app_url=url), backup_source.keyring)
    try:
        with ctx.sessions() as db, db.begin():
            highest = db.scalar(select(func.max(Organisation.id)))
            org = Organisation(name="New", kind="school", local_authority_id=1, phone=None)
            db.add(org)
            db.flush()
            assert org.id == highest + 1
            last_event = backup_source.result.manifest.tables["audit_events"].last_key
            event_id = record(db, ctx, EventTag.AUTH_LOGOUT, info=RequestInfo(None, "cli"))
            assert event_id == last_event + 1
    finally:
        ctx.engine.dispose()


def test_the_backup_holds_no_clear_text(backup_source: BackupSource) -> None:
    known = backup_source.generated.sample[0]
    engine = make_engine(backup_source.url)
    with engine.connect() as conn:
        bidx = conn.execute(
            select(Child.family_name_bidx, Child.postcode_bidx).where(Child.id == known["child_id"])
        ).one()
    engine.dispose()
    secrets_in_clear = [
        known["family_name"].encode(),
        known["given_name"].encode(),
        known["postcode"].encode(),
        known["child_id"].encode(),
        bidx[0],
        bidx[0].hex().encode(),
        bidx[1].hex().encode(),
        AWKWARD_NAME.encode(),
    ]
    sealed = backup_source.backup.read_bytes()
    assert [s for s in secrets_in_clear if s in sealed] == []
    # The check would find them: the plaintext holds the id, the indexes and the awkward name.
    plain = open_sealed(sealed, backup_source.identity.age)
    assert known["child_id"].encode() in plain
    assert bidx[0].hex().encode() in plain
    assert b"caf\xc3\xa9 \xe2\x98\x83" in plain


# Refusals ---------------------------------------------------------------------------------------


def _flip(at: Callable[[int], int]) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        out = bytearray(data)
        out[at(len(data))] ^= 0x01
        return bytes(out)

    return damage


AGE_CHUNK = 64 * 1024 + 16  # a sealed chunk of the age payload: 64 KiB and its tag


def _payload(data: bytes) -> int:
    """Where an age file's first chunk starts: after the header's MAC line and the 16-byte nonce."""
    mac_line = data.index(b"\n--- ") + 1
    return data.index(b"\n", mac_line) + 1 + 16


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "a flipped byte in the middle": _flip(lambda n: n // 2),
    "a flipped byte in the header": _flip(lambda n: 40),
    "a flipped last byte": _flip(lambda n: n - 1),
    "cut short": lambda d: d[: len(d) - 1000],
    "cut at a chunk boundary": lambda d: d[: _payload(d) + AGE_CHUNK],
    "extended": lambda d: d + b"\x00",
    "cut in the header": lambda d: d[:60],
}


@pytest.mark.parametrize("kind", ["migrated", "bare"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_backup_is_refused_and_the_target_left_as_it_was(
    backup_source: BackupSource, targets: Targets, tmp_path: Path, damage: str, kind: str
) -> None:
    damaged = tmp_path / "damaged.cpb"
    damaged.write_bytes(DAMAGE[damage](backup_source.backup.read_bytes()))
    url = getattr(targets, kind)(backup_source.backend)
    before = target_state(url)
    whole = backup_source.backup.read_bytes()
    assert len(whole) > _payload(whole) + AGE_CHUNK  # so a cut at a chunk boundary loses data
    with pytest.raises(AgeFileError):
        restore_backup(url, backup_source.identity, damaged)
    assert target_state(url) == before


def test_a_wrong_key_is_refused(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    other_identity, _ = new_key_pair(tmp_path / "other")
    url = targets.bare(backup_source.backend)
    before = target_state(url)
    with pytest.raises(AgeFileError, match="another key"):
        restore_backup(url, load_identities(other_identity.read_bytes()), backup_source.backup)
    assert target_state(url) == before


def _lose_a_row(batches: Iterator[Rows]) -> Iterator[Rows]:
    for batch in batches:
        if batch.spec.name == "involvements" and len(batch.lines) > 1:
            batch = Rows(batch.spec, batch.lines[1:])
        yield batch


@pytest.mark.parametrize("change", [_lose_a_row, flip_a_flag])
def test_a_restore_that_does_not_match_the_manifest_rolls_back(
    backup_source: BackupSource,
    targets: Targets,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Iterator[Rows]], Any],
) -> None:
    tamper_loader(monkeypatch, change)
    url = targets.migrated(backup_source.backend)
    before = target_state(url)
    with pytest.raises(RestoreError, match="involvements") as refused:
        restore_backup(url, backup_source.identity, backup_source.backup)
    assert [c.table for c in refused.value.checks if not c.ok] == ["involvements"]
    assert target_state(url) == before


def _fail_midway(batches: Iterator[Rows]) -> Iterator[Rows]:
    for batch in batches:
        if batch.spec.name == "involvements":
            raise OSError(5, "Input/output error")
        yield batch


def test_a_restore_failing_midway_leaves_keys_indexes_and_rows_as_they_were(
    backup_source: BackupSource, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper_loader(monkeypatch, _fail_midway)
    url = targets.migrated(backup_source.backend)
    before = target_state(url)
    with pytest.raises(OSError, match="Input/output"):
        restore_backup(url, backup_source.identity, backup_source.backup)
    assert target_state(url) == before


def test_a_target_holding_rows_is_refused(backup_source: BackupSource, targets: Targets) -> None:
    url = targets.migrated(backup_source.backend)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO local_authorities (ons_code, name, region) VALUES ('Q1', 'Q', 'Q')")
        )
    engine.dispose()
    before = target_state(url)
    with pytest.raises(RestoreError, match=r"not empty \(rows in local_authorities\)"):
        restore_backup(url, backup_source.identity, backup_source.backup)
    assert target_state(url) == before


def test_a_backup_of_an_unknown_schema_is_refused(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    # Anyone with the recipient key can seal a file: the envelope proves integrity, not origin.
    plain = open_sealed(backup_source.backup.read_bytes(), backup_source.identity.age)
    stamped = f'"alembic_revision":"{HEAD}"'.encode()
    assert stamped in plain
    forged = plain.replace(stamped, b'"alembic_revision":"0099"')
    recipients = load_recipients(backup_source.recipient_file.read_text())
    path = tmp_path / "forged.cpb"
    path.write_bytes(seal(forged, recipients))
    url = targets.bare(backup_source.backend)
    before = target_state(url)
    with pytest.raises(RestoreError, match="0099 is unknown"):
        restore_backup(url, backup_source.identity, path)
    assert target_state(url) == before


def _without_alerts(specs: list[TableSpec]) -> list[TableSpec]:
    return [s for s in specs if s.name != "alerts"]


def _without_a_column(specs: list[TableSpec]) -> list[TableSpec]:
    return [
        TableSpec(s.name, s.columns[:-1], s.primary_key) if s.name == "organisations" else s
        for s in specs
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_without_alerts, "tables are not the registry's"),
        (_without_a_column, "organisations: the backup's columns"),
    ],
)
def test_a_backup_not_shaped_like_its_schema_is_refused(
    backup_source: BackupSource,
    targets: Targets,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[list[TableSpec]], list[TableSpec]],
    message: str,
) -> None:
    original = snapshot.registry_specs
    monkeypatch.setattr(snapshot, "registry_specs", lambda tables: change(original(tables)))
    recipients = load_recipients(backup_source.recipient_file.read_text())
    path = tmp_path / "odd.cpb"
    write_backup(backup_source.url, recipients, path, now=NOW)
    url = targets.bare(backup_source.backend)
    before = target_state(url)
    with pytest.raises(RestoreError, match=message):
        restore_backup(url, backup_source.identity, path)
    assert target_state(url) == before


def test_another_age_file_is_not_a_backup(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    recipients = load_recipients(backup_source.recipient_file.read_text())
    path = tmp_path / "export.bin"
    path.write_bytes(seal(b'{"child_id":"X"}\n', recipients))  # an export sealed to the same key
    with pytest.raises(BackupFormatError, match="not a ContactPoint backup"):
        restore_backup(targets.bare(backup_source.backend), backup_source.identity, path)
    path.write_bytes(b"not an age file at all")
    with pytest.raises(AgeFileError, match="not an age file"):
        restore_backup(targets.bare(backup_source.backend), backup_source.identity, path)


# Backups ----------------------------------------------------------------------------------------


def test_a_backup_is_one_snapshot(
    backup_source: BackupSource, targets: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = targets.bare(backup_source.backend)
    restore_backup(url, backup_source.identity, backup_source.backup)
    ctx = make_context(Database(backend="x", owner_url=url, app_url=url), backup_source.keyring)
    original = snapshot.table_blocks
    written: list[int] = []

    def scan_then_write(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield from original(*args, **kwargs)
        if not written:  # another writer commits while the backup is under way
            with ctx.sessions() as db, db.begin():
                written.append(record(db, ctx, EventTag.AUTH_LOGOUT, info=RequestInfo(None, "x")))

    monkeypatch.setattr(snapshot, "table_blocks", scan_then_write)
    recipients = load_recipients(backup_source.recipient_file.read_text())
    result = write_backup(url, recipients, tmp_path / "b.cpb", now=ctx.clock.now())
    ctx.engine.dispose()
    assert written
    assert (
        result.manifest.tables["audit_events"]
        == backup_source.result.manifest.tables["audit_events"]
    )
    assert table_digests(url)["audit_events"][0] == result.manifest.tables["audit_events"].rows + 1


def test_a_failed_backup_leaves_no_file(
    backup_source: BackupSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = snapshot.table_blocks
    calls: list[str] = []

    def fail_on_third(conn: Any, spec: Any, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        calls.append(spec.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        yield from original(conn, spec, *args, **kwargs)

    monkeypatch.setattr(snapshot, "table_blocks", fail_on_third)
    out = tmp_path / "out"
    out.mkdir()
    recipients = load_recipients(backup_source.recipient_file.read_text())
    with pytest.raises(OSError, match="No space"):
        write_backup(backup_source.url, recipients, out / "b.cpb", now=NOW)
    assert list(out.iterdir()) == []


def test_a_backup_never_overwrites(backup_source: BackupSource, tmp_path: Path) -> None:
    out = tmp_path / "b.cpb"
    out.write_bytes(b"keep")
    recipients = load_recipients(backup_source.recipient_file.read_text())
    with pytest.raises(BackupError, match="exists"):
        write_backup(backup_source.url, recipients, out, now=NOW)
    assert out.read_bytes() == b"keep"


def test_a_missing_sqlite_database_is_not_created(tmp_path: Path) -> None:
    recipients = load_recipients(new_key_pair(tmp_path / "k")[1].read_text())
    with pytest.raises(BackupError, match="no SQLite database"):
        write_backup(f"sqlite:///{tmp_path / 'nothing.db'}", recipients, tmp_path / "b", now=NOW)
    assert not (tmp_path / "nothing.db").exists()
