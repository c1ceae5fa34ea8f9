"""Reading the registry in one consistent snapshot, and writing a backup from it.

On PostgreSQL the snapshot is a REPEATABLE READ READ ONLY transaction; on SQLite one deferred
read transaction (with WAL, writers carry on and the reader keeps its view). Rows are streamed
in primary-key order, so memory stays bounded whatever the size of the registry: PostgreSQL
writes the canonical row lines itself (COPY TO), SQLite's rows are encoded in Python. Text keys
are ordered by code point on both backends.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from alembic.script import ScriptDirectory
from pyrage.x25519 import Recipient
from sqlalchemy import Connection, Engine, Select, func, inspect, select, text
from sqlalchemy.engine import make_url

from reference_app.backup.format import (
    ALEMBIC_SPEC,
    ALEMBIC_TABLE,
    END_OF_TABLE,
    BackupError,
    ColumnType,
    Header,
    Manifest,
    TableDigest,
    TableSpec,
    TableSum,
    registry_specs,
    row_encoder,
    table_line,
)
from reference_app.kit.agefile import encrypt_stream, fingerprint
from reference_app.kit.db import is_sqlite, make_engine
from reference_app.kit.db import snapshot as db_snapshot
from reference_app.kit.migrate import alembic_config, target_metadata
from reference_app.kit.progress import Progress

STREAM_ROWS = 5000
BLOCK_BYTES = 1 << 20


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (None for other backends and in-memory databases)."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def snapshot_engine(url: str) -> Engine:
    """An engine for reading snapshots: on SQLite, deferred read-only transactions.

    The application's SQLite engine begins IMMEDIATE (it writes after reading): a backup must
    not hold the write lock for its whole run. A missing SQLite file is refused, not created.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise BackupError(f"no SQLite database at {path}")
    return make_engine(url, pool_size=1, read_only=True)


def snapshot(engine: Engine) -> AbstractContextManager[Connection]:
    """One read-only transaction that sees the database as of its first read."""
    return db_snapshot(engine, read_only=True)


def schema_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(ALEMBIC_TABLE):
        return None
    return conn.execute(select(ALEMBIC_SPEC.table.c.version_num)).scalar()


def head_revision(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def _order(conn: Connection, spec: TableSpec) -> list[Any]:
    table, types = spec.table, dict(spec.columns)
    postgres = conn.dialect.name == "postgresql"
    return [
        table.c[k].collate("C") if postgres and types[k] is ColumnType.STR else table.c[k]
        for k in spec.primary_key
    ]


def _bounded(statement: Select[Any], spec: TableSpec, up_to: int | None) -> Select[Any]:
    if up_to is None or spec.serial_key is None:
        return statement
    return statement.where(spec.table.c[spec.serial_key] <= up_to)


_PG_FORMATS = {ColumnType.DATETIME: 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', ColumnType.DATE: "YYYY-MM-DD"}


def prepare_postgres(conn: Connection) -> None:
    """Fix the output settings COPY's text depends on, for this transaction."""
    conn.execute(text("SET LOCAL bytea_output = 'hex'"))
    conn.execute(text("SET LOCAL client_encoding = 'UTF8'"))


def _postgres_blocks(conn: Connection, spec: TableSpec, up_to: int | None) -> Iterator[bytes]:
    """PostgreSQL writes the canonical lines itself: COPY (SELECT ...) TO STDOUT."""
    table = spec.table
    columns = [
        func.to_char(table.c[n], _PG_FORMATS[t]) if t in _PG_FORMATS else table.c[n]
        for n, t in spec.columns
    ]
    statement = _bounded(select(*columns).order_by(*_order(conn, spec)), spec, up_to)
    query = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    driver = conn.connection.driver_connection
    assert driver is not None
    buffer = bytearray()
    with driver.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
        for data in copy:
            buffer += data
            if len(buffer) >= BLOCK_BYTES:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


def _sqlite_blocks(conn: Connection, spec: TableSpec, up_to: int | None) -> Iterator[bytes]:
    encode = row_encoder(spec)
    statement = _bounded(select(spec.table).order_by(*_order(conn, spec)), spec, up_to)
    result = conn.execution_options(yield_per=STREAM_ROWS).execute(statement)
    for rows in result.partitions():
        yield encode(rows)


def count_rows(conn: Connection, spec: TableSpec, *, above: int | None = None) -> int:
    statement = select(func.count()).select_from(spec.table)
    if above is not None and spec.serial_key is not None:
        statement = statement.where(spec.table.c[spec.serial_key] > above)
    return int(conn.execute(statement).scalar_one())


def table_blocks(
    conn: Connection,
    spec: TableSpec,
    digest: TableDigest,
    *,
    up_to: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[bytes]:
    """Yield a table's row lines in key order (keys ``up_to`` at most), counted into ``digest``.

    Writing a backup and checking one compute the checksum the same way, through here.
    """
    blocks = _postgres_blocks if conn.dialect.name == "postgresql" else _sqlite_blocks
    for block in blocks(conn, spec, up_to):
        count = block.count(b"\n")
        digest.update(block, count)
        if progress is not None:
            progress(count)
        yield block
    if spec.serial_key is not None:
        highest = select(func.max(spec.table.c[spec.serial_key]))
        digest.last_key = conn.execute(_bounded(highest, spec, up_to)).scalar()


def scan_table(
    conn: Connection,
    spec: TableSpec,
    *,
    up_to: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> TableDigest:
    """Count and checksum a table's row lines in key order (keys ``up_to`` at most, if given)."""
    digest = TableDigest(spec)
    for _block in table_blocks(conn, spec, digest, up_to=up_to, progress=progress):
        pass
    return digest


class HashingFile:
    """A file wrapper that computes the SHA-256 and size of what is read or written through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    sha256: str
    manifest: Manifest
    recipient: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "bytes": self.size,
            "sha256": self.sha256,
            "recipient": self.recipient,
            "rows": self.manifest.total_rows,
            "seconds": round(self.seconds, 3),
            "manifest": self.manifest.to_doc(),
        }


def write_backup(
    url: str,
    recipients: Sequence[Recipient],
    out: Path,
    *,
    now: datetime,
    progress: bool = False,
) -> BackupResult:
    """Write one consistent snapshot of the registry at ``url``, sealed to ``recipients`` (age).

    The file appears at ``out`` only once complete (written under a temporary name, synced,
    then renamed); ``out`` must not exist.
    """
    started = time.perf_counter()
    if out.exists():
        raise BackupError(f"{out} exists; a backup never overwrites a file")
    engine = snapshot_engine(url)
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    try:
        with snapshot(engine) as conn:
            revision = schema_revision(conn)
            head = head_revision(engine)
            if revision is None:
                raise BackupError("the database has no registry schema (no alembic_version)")
            if revision != head:
                raise BackupError(
                    f"the database is at schema revision {revision}, this contactpoint at "
                    f"{head}: run `contactpoint db upgrade` first"
                )
            specs = registry_specs(target_metadata.sorted_tables)
            counts = {spec.name: count_rows(conn, spec) for spec in specs}
            header = Header(
                now.isoformat(timespec="microseconds"),
                engine.dialect.name,
                revision,
                tuple(specs),
                counts,
            )
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with (
                os.fdopen(fd, "wb") as raw,
                Progress("backup", sum(counts.values()), "rows", enabled=progress) as bar,
            ):
                sink = HashingFile(cast(BinaryIO, raw))
                sums: dict[str, TableSum] = {}
                encrypt_stream(
                    _plaintext(conn, header, sums, bar.update), cast(BinaryIO, sink), recipients
                )
                manifest = Manifest(header.created_at, header.dialect, revision, sums)
                raw.flush()
                os.fsync(raw.fileno())
        if out.exists():
            raise BackupError(f"{out} appeared while the backup was written; not overwritten")
        os.replace(partial, out)
        _sync_directory(out.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    return BackupResult(
        out,
        sink.size,
        sink.sha256.hexdigest(),
        manifest,
        fingerprint(recipients),
        time.perf_counter() - started,
    )


def _plaintext(
    conn: Connection, header: Header, sums: dict[str, TableSum], progress: Callable[[int], Any]
) -> Iterator[bytes]:
    """The backup's lines, drawn as the encryption asks: header, each table, manifest.

    Each table's count and checksum land in ``sums`` as its rows go by.
    """
    yield header.to_line()
    for spec in header.tables:
        yield table_line(spec.name)
        digest = TableDigest(spec)
        yield from table_blocks(conn, spec, digest, progress=progress)
        yield END_OF_TABLE + b"\n"
        sums[spec.name] = digest.summary()
    manifest = Manifest(header.created_at, header.dialect, header.alembic_revision, sums)
    yield manifest.to_line()


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
