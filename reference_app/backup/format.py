r"""The backup file: a backend-neutral stream of rows inside an age file, with its manifest.

The age file's plaintext (an old envelope's: label ``contactpoint-backup/v1``) is UTF-8 lines:

1. a JSON header: format, version, created_at, source dialect, alembic revision, and each
   table's columns (name and neutral type), primary key and row count, in load order;
2. for each table, a JSON ``{"table": name}`` line, one line per row in primary-key order, and
   a line holding only ``\.``;
3. a JSON ``{"manifest": {...}}`` line: the header's facts again, and per table the row count,
   the SHA-256 content checksum and the highest key (for a table keyed by one integer).

A row line is the row's canonical form: fields separated by tabs; NULL as ``\N``; text with
backslash, backspace, form feed, newline, carriage return, tab and vertical tab escaped as
``\\ \b \f \n \r \t \v``; integers in decimal; booleans ``t`` or ``f``; bytes as ``\x`` and
lowercase hex (whose backslash is escaped like any other, so ``\\x0a1b`` in the line);
datetimes in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; dates as ``YYYY-MM-DD``. These are the
rules of PostgreSQL's COPY text format, so PostgreSQL writes and reads the lines itself
(``COPY TO`` with the datetimes formatted, ``COPY FROM``), while SQLite's are made and read in
Python. A table's checksum is SHA-256 over its name and columns, then each row line: the same
data gives the same checksum on either backend.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from reference_app.kit.db import UTCDateTime

LABEL = b"contactpoint-backup/v1"
FORMAT = "contactpoint-backup"
VERSION = 1
ALEMBIC_TABLE = "alembic_version"
END_OF_TABLE = b"\\."
NULL = "\\N"
BATCH_ROWS = 2000


class BackupError(Exception):
    """A backup or restore that was refused or failed; the message names why, never data."""


class BackupFormatError(BackupError):
    """The backup's content is not a well-formed backup (or does not match its own manifest)."""


class ColumnType(StrEnum):
    BOOL = "bool"
    BYTES = "bytes"
    DATE = "date"
    DATETIME = "datetime"
    INT = "int"
    STR = "str"


def column_type(type_: TypeEngine[Any], where: str) -> ColumnType:
    """The neutral type a column is backed up as; refuse a type with no exact round trip."""
    if isinstance(type_, UTCDateTime):
        return ColumnType.DATETIME
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    # Order matters: Boolean before Integer; Enum and Text are Strings. A naive DateTime, a
    # float or a JSON column has no canonical form here (the registry stores moments as
    # UTCDateTime and documents as canonical text) and is refused.
    for sa_type, neutral in (
        (Boolean, ColumnType.BOOL),
        (Integer, ColumnType.INT),
        (LargeBinary, ColumnType.BYTES),
        (Date, ColumnType.DATE),
        (String, ColumnType.STR),
    ):
        if isinstance(type_, sa_type) and not isinstance(type_, DateTime):
            return neutral
    raise BackupFormatError(f"{where}: no backup form for column type {type_!r}")


# Read and written as naive UTC: the canonical form needs no time zone arithmetic.
_SA_TYPES: dict[ColumnType, TypeEngine[Any]] = {
    ColumnType.BOOL: Boolean(create_constraint=False),
    ColumnType.BYTES: LargeBinary(),
    ColumnType.DATE: Date(),
    ColumnType.DATETIME: DateTime(timezone=False),
    ColumnType.INT: BigInteger(),
    ColumnType.STR: String(),
}


@dataclass(frozen=True)
class TableSpec:
    """One table as the backup sees it: columns with neutral types, and the primary key."""

    name: str
    columns: tuple[tuple[str, ColumnType], ...]
    primary_key: tuple[str, ...]

    @classmethod
    def of(cls, table: Table) -> TableSpec:
        columns = tuple(
            (c.name, column_type(c.type, f"{table.name}.{c.name}")) for c in table.columns
        )
        key = tuple(c.name for c in table.primary_key.columns) or tuple(n for n, _ in columns)
        return cls(table.name, columns, key)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TableSpec:
        try:
            return cls(
                str(doc["name"]),
                tuple((str(n), ColumnType(t)) for n, t in doc["columns"]),
                tuple(str(k) for k in doc["primary_key"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupFormatError(f"a table description is malformed: {exc}") from exc

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [[n, t.value] for n, t in self.columns],
            "primary_key": list(self.primary_key),
        }

    @property
    def column_names(self) -> list[str]:
        return [n for n, _ in self.columns]

    @property
    def serial_key(self) -> str | None:
        """The key column when the table is keyed by one integer, else None."""
        if len(self.primary_key) != 1:
            return None
        types = dict(self.columns)
        return self.primary_key[0] if types[self.primary_key[0]] is ColumnType.INT else None

    @cached_property
    def table(self) -> Table:
        """A SQLAlchemy table of this shape, to read and write it on either backend."""
        return Table(
            self.name,
            MetaData(),
            *(Column(n, _SA_TYPES[t], primary_key=n in self.primary_key) for n, t in self.columns),
        )

    def preamble(self) -> bytes:
        """What a table's checksum starts with: its name and columns."""
        return _dumps([self.name, [[n, t.value] for n, t in self.columns]]).encode() + b"\n"


ALEMBIC_SPEC = TableSpec(ALEMBIC_TABLE, (("version_num", ColumnType.STR),), ("version_num",))


def registry_specs(tables: Iterable[Table]) -> list[TableSpec]:
    """The tables to back up, in dependency order, with alembic's version table last."""
    return [*(TableSpec.of(t) for t in tables), ALEMBIC_SPEC]


# Canonical row lines ----------------------------------------------------------------------------

_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode
_ESCAPES = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES["\v"] = "\\v"
_NEEDS_ESCAPE = re.compile("[\\\\\b\f\n\r\t\v]")
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}
_ESCAPED = re.compile(r"\\(.)")


def escape_text(text: str) -> str:
    """Text as COPY writes it (backslash and the six named control characters escaped)."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), text)


_ENCODERS: dict[ColumnType, Callable[[Any], str]] = {
    ColumnType.BOOL: lambda v: "t" if v else "f",
    ColumnType.BYTES: lambda v: "\\\\x" + v.hex(),
    ColumnType.DATE: lambda v: v.isoformat(),
    ColumnType.DATETIME: lambda v: v.isoformat(timespec="microseconds") + "Z",
    ColumnType.INT: str,
    ColumnType.STR: escape_text,
}


def row_encoder(spec: TableSpec) -> Callable[[Iterable[Sequence[Any]]], bytes]:
    """A function turning database rows (naive UTC datetimes) into a block of row lines."""
    encoders = [_ENCODERS[t] for _, t in spec.columns]

    def encode(rows: Iterable[Sequence[Any]]) -> bytes:
        lines = [
            "\t".join([NULL if v is None else f(v) for f, v in zip(encoders, row, strict=True)])
            for row in rows
        ]
        return ("\n".join(lines) + "\n").encode() if lines else b""

    return encode


def _bytes(field: str) -> bytes:
    if not field.startswith("\\\\x"):
        raise ValueError("bytes must be written \\\\x and hex")
    return bytes.fromhex(field[3:])


def _sqlite_datetime(field: str) -> str:
    if len(field) != 27 or field[10] != "T" or field[-1] != "Z":
        raise ValueError("a datetime must be YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return f"{field[:10]} {field[11:-1]}"


def _sqlite_bool(field: str) -> int:
    if field not in ("t", "f"):
        raise ValueError("a boolean is t or f")
    return 1 if field == "t" else 0


# What SQLAlchemy stores in SQLite for each type: datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff',
# dates as ISO text, booleans as 0 or 1.
_SQLITE_DECODERS: dict[ColumnType, Callable[[str], Any]] = {
    ColumnType.BOOL: _sqlite_bool,
    ColumnType.BYTES: _bytes,
    ColumnType.DATE: str,
    ColumnType.DATETIME: _sqlite_datetime,
    ColumnType.INT: int,
    ColumnType.STR: _unescape,
}


def sqlite_row_decoder(spec: TableSpec) -> Callable[[bytes], tuple[Any, ...]]:
    """A function turning one row line into the values SQLite stores for it.

    The loader may trust what it is given: the restored tables are read back through their
    types and checked against the manifest before anything is committed.
    """
    decoders = [_SQLITE_DECODERS[t] for _, t in spec.columns]
    width = len(decoders)

    def decode(line: bytes) -> tuple[Any, ...]:
        fields = line.decode("utf-8").split("\t")
        if len(fields) != width:
            raise BackupFormatError(f"a row of {spec.name} does not have {width} fields")
        try:
            return tuple(None if v == NULL else f(v) for f, v in zip(decoders, fields, strict=True))
        except ValueError as exc:
            raise BackupFormatError(f"a row of {spec.name} is malformed: {exc}") from exc

    return decode


@dataclass
class TableDigest:
    """Row count and SHA-256 of one table's canonical lines, fed block by block."""

    spec: TableSpec
    rows: int = 0
    last_key: int | None = None
    _hash: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._hash = hashlib.sha256(self.spec.preamble())

    def update(self, block: bytes, rows: int) -> None:
        self._hash.update(block)
        self.rows += rows

    @property
    def sha256(self) -> str:
        return str(self._hash.hexdigest())

    def summary(self) -> TableSum:
        return TableSum(self.rows, self.sha256, self.last_key)


# Header and manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSum:
    rows: int
    sha256: str
    last_key: int | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"rows": self.rows, "sha256": self.sha256, "last_key": self.last_key}


@dataclass(frozen=True)
class Header:
    created_at: str
    dialect: str
    alembic_revision: str
    tables: tuple[TableSpec, ...]
    rows: dict[str, int]

    def to_line(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "dialect": self.dialect,
            "alembic_revision": self.alembic_revision,
            "tables": [{**s.to_doc(), "rows": self.rows[s.name]} for s in self.tables],
        }
        return _dumps(doc).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Header:
        doc = _object(line, "header")
        if doc.get("format") != FORMAT:
            raise BackupFormatError("not a ContactPoint backup")
        if doc.get("version") != VERSION:
            raise BackupFormatError(f"backup format version {doc.get('version')} is not supported")
        try:
            tables = tuple(TableSpec.from_doc(t) for t in doc["tables"])
            rows = {str(t["name"]): int(t["rows"]) for t in doc["tables"]}
            return cls(
                str(doc["created_at"]),
                str(doc["dialect"]),
                str(doc["alembic_revision"]),
                tables,
                rows,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupFormatError(f"the header is malformed: {exc}") from exc


@dataclass(frozen=True)
class Manifest:
    """What the backup holds: where it came from, and each table's count and checksum."""

    created_at: str
    dialect: str
    alembic_revision: str
    tables: dict[str, TableSum]

    def to_doc(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "dialect": self.dialect,
            "alembic_revision": self.alembic_revision,
            "tables": {name: s.to_doc() for name, s in self.tables.items()},
        }

    def to_line(self) -> bytes:
        return _dumps({"manifest": self.to_doc()}).encode() + b"\n"

    @property
    def total_rows(self) -> int:
        return sum(s.rows for s in self.tables.values())

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Manifest:
        try:
            tables = {
                str(name): TableSum(int(s["rows"]), str(s["sha256"]), s.get("last_key"))
                for name, s in doc["tables"].items()
            }
            return cls(
                str(doc["created_at"]), str(doc["dialect"]), str(doc["alembic_revision"]), tables
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupFormatError(f"the manifest is malformed: {exc}") from exc


def _object(line: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise BackupFormatError(f"the {what} is not JSON") from exc
    if not isinstance(doc, dict):
        raise BackupFormatError(f"the {what} is not a JSON object")
    return doc


def table_line(name: str) -> bytes:
    """The line that starts a table's rows."""
    return _dumps({"table": name}).encode() + b"\n"


# Reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """A batch of consecutive row lines of one table, as written."""

    spec: TableSpec
    lines: list[bytes]

    def block(self) -> bytes:
        return b"\n".join(self.lines) + b"\n"


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk if rest else chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        raise BackupFormatError("the backup ends in the middle of a line")


def read_backup(chunks: Iterable[bytes]) -> Iterator[Header | Rows | Manifest]:
    """Yield the header, batches of rows, then the manifest; check the stream against it.

    The manifest comes last and only once ``chunks`` is exhausted, so with an age file's
    plaintext it also means the whole file was authentic and complete. Every table's count and
    checksum is checked against the manifest here; a restored database is checked again.
    """
    lines = _lines(chunks)
    first = next(lines, None)
    if first is None:
        raise BackupFormatError("the backup is empty")
    header = Header.from_line(first)
    yield header
    digests: dict[str, TableDigest] = {}
    manifest: Manifest | None = None
    for spec in header.tables:
        line = next(lines, None)
        if line is None or _object(line, "table start").get("table") != spec.name:
            raise BackupFormatError(f"table {spec.name} is missing or out of place")
        digest = digests[spec.name] = TableDigest(spec)
        batch: list[bytes] = []
        for line in lines:
            if line == END_OF_TABLE:
                break
            batch.append(line)
            if len(batch) >= BATCH_ROWS:
                rows = Rows(spec, batch)
                digest.update(rows.block(), len(batch))
                yield rows
                batch = []
        else:
            raise BackupFormatError("the backup was cut short")
        if batch:
            rows = Rows(spec, batch)
            digest.update(rows.block(), len(batch))
            yield rows
    line = next(lines, None)
    doc = _object(line, "manifest") if line is not None else {}
    if not isinstance(doc.get("manifest"), dict):
        raise BackupFormatError("the backup has no manifest (it was cut short)")
    manifest = Manifest.from_doc(doc["manifest"])
    if next(lines, None) is not None:
        raise BackupFormatError("data after the manifest")
    yield _check_stream(header, digests, manifest)


def _check_stream(header: Header, digests: dict[str, TableDigest], manifest: Manifest) -> Manifest:
    """Check the stream against the manifest; return the manifest in load order."""
    names = [s.name for s in header.tables]
    if sorted(manifest.tables) != sorted(names) or list(digests) != names:
        raise BackupFormatError("the manifest does not list the tables the backup holds")
    if (manifest.created_at, manifest.dialect, manifest.alembic_revision) != (
        header.created_at,
        header.dialect,
        header.alembic_revision,
    ):
        raise BackupFormatError("the manifest and the header disagree")
    for name in names:
        expected, seen = manifest.tables[name], digests[name]
        if header.rows[name] != expected.rows:
            raise BackupFormatError(
                f"table {name}: the header and the manifest disagree on its row count"
            )
        if seen.rows != expected.rows:
            raise BackupFormatError(
                f"table {name}: the backup holds {seen.rows} rows, its manifest says "
                f"{expected.rows}"
            )
        if seen.sha256 != expected.sha256:
            raise BackupFormatError(f"table {name}: the rows do not match the manifest checksum")
    return Manifest(
        manifest.created_at,
        manifest.dialect,
        manifest.alembic_revision,
        {name: manifest.tables[name] for name in names},
    )
