"""Restoring a backup into an empty database, and the restore drill.

A restore reads the file twice. The first pass authenticates the whole age file and checks the
stream against its manifest without touching the database, so a wrong key, a flipped byte or a
cut-short file is refused before anything happens. The second pass runs in one transaction:
check that the target is empty, bring the schema to the backup's revision, drop the keys and
indexes, load every row (PostgreSQL: COPY), rebuild the keys and indexes, move the id sequences
past the loaded ids, recompute every table's count and checksum from the database, and commit
only if all match the manifest. Any failure rolls
the whole transaction back; a SQLite file that did not exist before is removed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, bindparam, func, inspect, literal, select, table, text
from sqlalchemy.engine import make_url

from reference_app.backup.format import (
    ALEMBIC_TABLE,
    LABEL,
    BackupError,
    Header,
    Manifest,
    Rows,
    TableDigest,
    TableSpec,
    read_backup,
    sqlite_row_decoder,
)
from reference_app.backup.snapshot import (
    HashingFile,
    count_rows,
    prepare_postgres,
    scan_table,
    snapshot,
    snapshot_engine,
    sqlite_path,
)
from reference_app.kit.agefile import Format, Identities, open_file, sniff
from reference_app.kit.db import make_engine
from reference_app.kit.migrate import alembic_config, target_metadata, upgrade
from reference_app.kit.progress import Progress


@dataclass(frozen=True)
class TableCheck:
    """One table of a restored database against the manifest."""

    table: str
    expected_rows: int
    expected_sha256: str
    rows: int
    sha256: str

    @property
    def ok(self) -> bool:
        return (self.rows, self.sha256) == (self.expected_rows, self.expected_sha256)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "expected_rows": self.expected_rows,
            "sha256": self.sha256,
            "expected_sha256": self.expected_sha256,
            "ok": self.ok,
        }


class RestoreError(BackupError):
    """The restore was refused or failed and the target was left as it was."""

    def __init__(self, message: str, checks: list[TableCheck] | None = None) -> None:
        super().__init__(message)
        self.checks = checks or []


@dataclass(frozen=True)
class VerifiedFile:
    header: Header
    manifest: Manifest
    sha256: str
    size: int
    format: Format = Format.AGE


@dataclass(frozen=True)
class RestoreResult:
    file: VerifiedFile
    checks: list[TableCheck]
    seconds: float
    dialect: str

    @property
    def manifest(self) -> Manifest:
        return self.file.manifest

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "file_sha256": self.file.sha256,
            "file_format": self.file.format.value,
            "created_at": self.manifest.created_at,
            "source_dialect": self.manifest.dialect,
            "target_dialect": self.dialect,
            "alembic_revision": self.manifest.alembic_revision,
            "rows": self.manifest.total_rows,
            "seconds": round(self.seconds, 3),
            "tables": [c.to_dict() for c in self.checks],
        }


def _bar(enabled: bool, total: int, desc: str, unit: str = "rows") -> Progress:
    return Progress(desc, total, unit, enabled=enabled)


def verify_file(path: Path, identities: Identities, *, progress: bool = False) -> VerifiedFile:
    """Authenticate the whole file and check its stream against its manifest; touch nothing."""
    header: Header | None = None
    manifest: Manifest | None = None
    with (
        path.open("rb") as raw,
        _bar(progress, path.stat().st_size, "verify", "B") as bar,
        ExitStack() as stack,
    ):
        kind = sniff(cast(BinaryIO, raw))
        hashing = HashingFile(cast(BinaryIO, raw))
        # Closed on the way out, so a refusal also ends the decrypting thread at once.
        chunks = stack.enter_context(
            closing(open_file(cast(BinaryIO, hashing), identities, kind=kind, legacy_label=LABEL))
        )

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                bar.update(len(chunk))
                yield chunk

        for record in read_backup(counted()):
            if isinstance(record, Header):
                header = record
            elif isinstance(record, Manifest):
                manifest = record
    assert header is not None
    assert manifest is not None
    return VerifiedFile(header, manifest, hashing.sha256.hexdigest(), hashing.size, kind)


def _records(path: Path, identities: Identities, expected: VerifiedFile) -> Generator[Rows]:
    """The rows of the file again (second pass), checked to be the file the first pass saw."""
    with path.open("rb") as raw:
        for record in read_backup(open_file(raw, identities, legacy_label=LABEL)):
            if isinstance(record, Rows):
                yield record
            elif record != (expected.header if isinstance(record, Header) else expected.manifest):
                raise RestoreError("the backup file changed while it was being restored")


# The target -------------------------------------------------------------------------------------


def _refuse_unless_empty(conn: Connection) -> str | None:
    """Refuse a target holding any registry row; return its schema revision (None if bare)."""
    existing = set(inspect(conn).get_table_names())
    present = sorted({t.name for t in target_metadata.sorted_tables} & existing)
    quote = conn.dialect.identifier_preparer.quote
    if present and conn.dialect.name == "postgresql":
        # Nobody writes to the tables between this check and the commit.
        conn.execute(text(f"LOCK TABLE {', '.join(map(quote, present))} IN EXCLUSIVE MODE"))
    holding = [
        name
        for name in present
        if conn.execute(select(literal(1)).select_from(table(name)).limit(1)).first()
    ]
    if holding:
        raise RestoreError(
            "the target database is not empty (rows in "
            + ", ".join(holding)
            + "); restore only into an empty database"
        )
    revision = None
    if ALEMBIC_TABLE in existing:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if present and revision is None:
        raise RestoreError("the target has registry tables but no schema revision; not restoring")
    return revision


def _bring_schema(conn: Connection, engine: Engine, current: str | None, wanted: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(engine))
    try:
        lineage = {r.revision for r in script.iterate_revisions(wanted, "base")}
    except (CommandError, RevisionError) as exc:
        raise RestoreError(
            f"the backup's schema revision {wanted} is unknown to this contactpoint (made by a "
            "newer version?)"
        ) from exc
    if current == wanted:
        return
    if current is not None and current not in lineage:
        raise RestoreError(
            f"the target schema is at revision {current}, ahead of or beside the backup's "
            f"{wanted}; restore into an empty database"
        )
    upgrade(engine, wanted, connection=conn)


def _check_shape(conn: Connection, header: Header) -> None:
    """The backup's tables and columns must be the registry's at the backup's revision."""
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    registry = {t.name for t in target_metadata.sorted_tables} | {ALEMBIC_TABLE}
    named = {s.name for s in header.tables}
    if not named <= registry or not (registry & existing) <= named:
        raise RestoreError(
            "the backup's tables are not the registry's at its schema revision "
            f"{header.alembic_revision}"
        )
    for spec in header.tables:
        columns = {c["name"] for c in inspector.get_columns(spec.name)}
        if columns != set(spec.column_names):
            raise RestoreError(
                f"table {spec.name}: the backup's columns are not the schema's at revision "
                f"{header.alembic_revision}"
            )


# Loading ----------------------------------------------------------------------------------------

Loader = Callable[[Connection, Iterator[Rows], Callable[[int], Any]], None]


def _load_postgres(
    conn: Connection, batches: Iterator[Rows], progress: Callable[[int], Any]
) -> None:
    """COPY each table's row lines as they are (they are COPY's text format), one COPY a table."""
    driver = conn.connection.driver_connection
    assert driver is not None
    quote = conn.dialect.identifier_preparer.quote
    pending = next(batches, None)
    with driver.cursor() as cursor:
        while pending is not None:
            spec = pending.spec
            columns = ", ".join(quote(n) for n in spec.column_names)
            with cursor.copy(f"COPY {quote(spec.name)} ({columns}) FROM STDIN") as copy:
                while pending is not None and pending.spec is spec:
                    copy.write(pending.block())
                    progress(len(pending.lines))
                    pending = next(batches, None)


def _load_sqlite(conn: Connection, batches: Iterator[Rows], progress: Callable[[int], Any]) -> None:
    """Insert each batch with executemany, as the values SQLite stores."""
    quote = conn.dialect.identifier_preparer.quote
    for batch in batches:
        spec = batch.spec
        decode = sqlite_row_decoder(spec)
        columns = ", ".join(quote(n) for n in spec.column_names)
        marks = ", ".join("?" for _ in spec.columns)
        # Quoted identifiers, checked against the schema (_check_shape); values are bound.
        insert = f"INSERT INTO {quote(spec.name)} ({columns}) VALUES ({marks})"  # noqa: S608
        conn.exec_driver_sql(insert, [decode(line) for line in batch.lines])
        progress(len(batch.lines))


def _defer_sqlite_indexes(conn: Connection, names: list[str]) -> list[str]:
    """Drop the secondary indexes of the tables to load; return the statements that rebuild them."""
    indexes = conn.execute(
        text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN :names ORDER BY name"
        ).bindparams(bindparam("names", expanding=True)),
        {"names": names},
    ).all()
    quote = conn.dialect.identifier_preparer.quote
    for name, _sql in indexes:
        conn.execute(text(f"DROP INDEX {quote(name)}"))
    return [sql for _name, sql in indexes]


def _defer_keys(conn: Connection, names: list[str]) -> list[str]:
    """Drop the keys, foreign keys and indexes of the tables to load; return what rebuilds them.

    Building an index once over loaded rows, and checking a foreign key with one join, is far
    quicker than keeping them up row by row (pg_restore does the same). All of it happens in
    the restore's transaction, so a failure rolls the drops back too.
    """
    constraints = conn.execute(
        text(
            "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(:names) "
            "AND c.contype IN ('p', 'u', 'f') ORDER BY c.contype = 'f' DESC, t.relname, c.conname"
        ),
        {"names": names},
    ).all()
    indexes = conn.execute(
        text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.schemaname = current_schema() AND i.tablename = ANY(:names) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname "
            "AND c.connamespace = current_schema()::regnamespace) ORDER BY i.indexname"
        ),
        {"names": names},
    ).all()
    quote = conn.dialect.identifier_preparer.quote
    for table_name, name, _kind, _definition in constraints:  # foreign keys first
        conn.execute(text(f"ALTER TABLE {quote(table_name)} DROP CONSTRAINT {quote(name)}"))
    for name, _definition in indexes:
        conn.execute(text(f"DROP INDEX {quote(name)}"))
    rebuild = [
        f"ALTER TABLE {quote(t)} ADD CONSTRAINT {quote(n)} {d}"
        for t, n, kind, d in constraints
        if kind != "f"
    ]
    rebuild += [definition for _name, definition in indexes]
    rebuild += [
        f"ALTER TABLE {quote(t)} ADD CONSTRAINT {quote(n)} {d}"
        for t, n, kind, d in constraints
        if kind == "f"
    ]
    return rebuild


def _move_sequences(conn: Connection, header: Header) -> None:
    """Move each PostgreSQL id sequence past the highest loaded id."""
    quote = conn.dialect.identifier_preparer.quote
    for spec in header.tables:
        if spec.serial_key is None:
            continue
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"),
            {"t": quote(spec.name), "c": spec.serial_key},
        ).scalar()
        if sequence is None:
            continue
        highest = conn.execute(select(func.max(spec.table.c[spec.serial_key]))).scalar()
        conn.execute(
            text("SELECT setval(:s, :v, :called)"),
            {"s": sequence, "v": highest or 1, "called": highest is not None},
        )


def check_tables(
    conn: Connection, manifest: Manifest, specs: tuple[TableSpec, ...], *, progress: bool = False
) -> list[TableCheck]:
    """Recompute each table's count and checksum from the database, against the manifest."""
    checks = []
    with _bar(progress, manifest.total_rows, "check") as bar:
        for spec in specs:
            expected = manifest.tables[spec.name]
            digest = scan_table(conn, spec, progress=bar.update)
            checks.append(
                TableCheck(spec.name, expected.rows, expected.sha256, digest.rows, digest.sha256)
            )
    return checks


@contextmanager
def _new_sqlite_file_removed_on_failure(url: str) -> Iterator[None]:
    path = sqlite_path(url)
    fresh = path is not None and (not path.exists() or path.stat().st_size == 0)
    try:
        yield
    except BaseException:
        if fresh and path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise


def restore_backup(
    url: str,
    identities: Identities,
    path: Path,
    *,
    progress: bool = False,
    verified: VerifiedFile | None = None,
) -> RestoreResult:
    """Restore the backup at ``path`` into the empty database at ``url``, all or nothing.

    Raises ``AgeFileError`` (wrong key, tampered, truncated), ``BackupFormatError`` or
    ``RestoreError`` (refused, or the loaded data does not match); the target is then as it was.
    ``verified`` skips the first pass when the caller has just made it.
    """
    started = time.perf_counter()
    file = verified or verify_file(path, identities, progress=progress)
    header, manifest = file.header, file.manifest
    with _new_sqlite_file_removed_on_failure(url), ExitStack() as stack:
        engine = make_engine(url, pool_size=1)
        stack.callback(engine.dispose)
        loader: Loader = _load_postgres if engine.dialect.name == "postgresql" else _load_sqlite
        with engine.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                prepare_postgres(conn)
            current = _refuse_unless_empty(conn)
            _bring_schema(conn, engine, current, header.alembic_revision)
            _check_shape(conn, header)
            records = stack.enter_context(closing(_records(path, identities, file)))
            batches = (b for b in records if b.spec.name != ALEMBIC_TABLE)
            postgres = engine.dialect.name == "postgresql"
            names = [s.name for s in header.tables if s.name != ALEMBIC_TABLE]
            rebuild = (_defer_keys if postgres else _defer_sqlite_indexes)(conn, names)
            with _bar(progress, manifest.total_rows, "restore") as bar:
                loader(conn, batches, bar.update)
            for statement in rebuild:
                conn.execute(text(statement))
            if postgres:
                _move_sequences(conn, header)
            checks = check_tables(conn, manifest, header.tables, progress=progress)
            failed = [c.table for c in checks if not c.ok]
            if failed:
                raise RestoreError(
                    "the restored data does not match the backup's manifest in "
                    + ", ".join(failed)
                    + "; rolled back",
                    checks,
                )
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return RestoreResult(file, checks, time.perf_counter() - started, engine.dialect.name)


# The drill --------------------------------------------------------------------------------------

SourceStatus = Literal["match", "grew", "changed", "differs", "missing"]

# Tables the running registry rewrites in place all the time (the detector's cursors and
# scores, sealing markers, limit and login counters, sessions): on a live host they differ from
# the backup within seconds, meaning nothing. The drill reports them "changed" and passes them.
BOOKKEEPING = frozenset(
    {
        "audit_pending",
        "detector_cursors",
        "limit_counters",
        "limit_members",
        "login_sessions",
        "login_throttles",
        "risk_scores",
    }
)
# The registry's history: rows are only ever added. Even on a live host (``live``) the source
# must still hold exactly the backup's rows of these, newer ones above them.
HISTORY = frozenset({"audit_checkpoints", "audit_events", "audit_log_entries", "audit_search_hits"})


@dataclass(frozen=True)
class DrillRow:
    """One table in the drill: the backup, the scratch restore, and the live source."""

    table: str
    backup_rows: int
    backup_sha256: str
    scratch_rows: int | None
    scratch_sha256: str | None
    source_rows: int | None
    source_sha256: str | None
    source_newer_rows: int
    source: SourceStatus

    @property
    def scratch_ok(self) -> bool:
        return (self.scratch_rows, self.scratch_sha256) == (self.backup_rows, self.backup_sha256)

    @property
    def ok(self) -> bool:
        return self.scratch_ok and self.source in ("match", "grew", "changed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "backup_rows": self.backup_rows,
            "backup_sha256": self.backup_sha256,
            "scratch_rows": self.scratch_rows,
            "scratch_sha256": self.scratch_sha256,
            "scratch": "match" if self.scratch_ok else "differs",
            "source_rows": self.source_rows,
            "source_sha256": self.source_sha256,
            "source_newer_rows": self.source_newer_rows,
            "source": self.source,
            "ok": self.ok,
        }


@dataclass
class DrillReport:
    manifest: Manifest
    scratch: str
    rows: list[DrillRow] = field(default_factory=list)
    restore_error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.restore_error is None and all(r.ok for r in self.rows)

    @property
    def failed(self) -> list[str]:
        return [r.table for r in self.rows if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "scratch": self.scratch,
            "restore_error": self.restore_error,
            "created_at": self.manifest.created_at,
            "alembic_revision": self.manifest.alembic_revision,
            "seconds": round(self.seconds, 3),
            "tables": [r.to_dict() for r in self.rows],
        }


def _source_digests(
    url: str, header: Header, manifest: Manifest, *, progress: bool
) -> dict[str, tuple[int, str, int] | None]:
    """Per table, from one snapshot of the source: (rows, checksum, newer rows), None if absent.

    For a table keyed by one integer, only rows up to the backup's highest key are summed;
    rows above it were added after the backup and are counted apart.
    """
    found: dict[str, tuple[int, str, int] | None] = {}
    engine = snapshot_engine(url)
    try:
        with snapshot(engine) as conn, _bar(progress, manifest.total_rows, "source") as bar:
            existing = set(inspect(conn).get_table_names())
            for spec in header.tables:
                if spec.name not in existing:
                    found[spec.name] = None
                    continue
                mark = manifest.tables[spec.name].last_key if spec.serial_key else None
                if spec.serial_key is not None and mark is None:
                    found[spec.name] = (0, TableDigest(spec).sha256, count_rows(conn, spec))
                    continue
                digest = scan_table(conn, spec, up_to=mark, progress=bar.update)
                newer = count_rows(conn, spec, above=mark) if mark is not None else 0
                found[spec.name] = (digest.rows, digest.sha256, newer)
    finally:
        engine.dispose()
    return found


@contextmanager
def _scratch_url(scratch: str | None) -> Iterator[str]:
    if scratch is not None:
        yield scratch
        return
    directory = tempfile.mkdtemp(prefix="contactpoint-drill-")
    try:
        yield f"sqlite:///{Path(directory) / 'scratch.db'}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def drill(
    source_url: str,
    identities: Identities,
    path: Path,
    *,
    scratch: str | None = None,
    progress: bool = False,
    live: bool = False,
) -> DrillReport:
    """Restore into a scratch database, then compare it with the manifest and the live source.

    Passes when the scratch copy matches the manifest in every table, and the source still
    holds exactly the backup's rows in every table: a table keyed by one integer may also hold
    newer rows above the backup's highest key (``grew``). Bookkeeping tables (``BOOKKEEPING``)
    may have changed (``changed``); with ``live``, so may every table but the history
    (``HISTORY``), which a registry in use changes by people's work (an alert closed, a login).
    """
    started = time.perf_counter()
    file = verify_file(path, identities, progress=progress)
    header, manifest = file.header, file.manifest
    with _scratch_url(scratch) as scratch_url:
        shown = make_url(scratch_url).render_as_string(hide_password=True)
        report = DrillReport(manifest, "temporary SQLite file" if scratch is None else shown)
        checks: dict[str, TableCheck] = {}
        try:
            result = restore_backup(scratch_url, identities, path, progress=progress, verified=file)
            checks = {c.table: c for c in result.checks}
        except RestoreError as exc:
            if not exc.checks:
                raise
            checks = {c.table: c for c in exc.checks}
            report.restore_error = str(exc)
    source = _source_digests(source_url, header, manifest, progress=progress)
    for spec in header.tables:
        expected = manifest.tables[spec.name]
        check = checks.get(spec.name)
        seen = source[spec.name]
        status: SourceStatus
        if seen is None:
            status = "missing"
        elif (seen[0], seen[1]) != (expected.rows, expected.sha256):
            may_change = spec.name in BOOKKEEPING or (live and spec.name not in HISTORY)
            status = "changed" if may_change else "differs"
        else:
            status = "grew" if seen[2] else "match"
        report.rows.append(
            DrillRow(
                spec.name,
                expected.rows,
                expected.sha256,
                check.rows if check else None,
                check.sha256 if check else None,
                seen[0] if seen else None,
                seen[1] if seen else None,
                seen[2] if seen else 0,
                status,
            )
        )
    report.seconds = time.perf_counter() - started
    return report
