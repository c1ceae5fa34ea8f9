"""The backup's canonical row lines and its framing: round trips, and malformed files refused."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from reference_app.backup.format import (
    BackupFormatError,
    ColumnType,
    Header,
    Manifest,
    Rows,
    TableSpec,
    escape_text,
    read_backup,
    registry_specs,
    row_encoder,
    sqlite_row_decoder,
    table_line,
)
from reference_app.kit.db import UTCDateTime
from reference_app.kit.migrate import target_metadata

SPEC = TableSpec(
    "things",
    (
        ("id", ColumnType.INT),
        ("name", ColumnType.STR),
        ("blob", ColumnType.BYTES),
        ("at", ColumnType.DATETIME),
        ("on", ColumnType.DATE),
        ("flag", ColumnType.BOOL),
    ),
    ("id",),
)
ROW = [7, "a\tb\nc\\d\r\b\f\v\x01 é ☃ \\N", b"\x00\x0a\xff", datetime(2026, 1, 2, 3, 4, 5, 6)]
ROW += [date(2009, 3, 1), True]


def test_every_registry_column_has_a_backup_form() -> None:
    specs = registry_specs(target_metadata.sorted_tables)
    assert [s.name for s in specs][-1] == "alembic_version"
    assert {s.name for s in specs} >= {"children", "audit_events", "audit_checkpoints"}


def test_a_column_with_no_exact_round_trip_is_refused() -> None:
    from sqlalchemy import Column, Float, MetaData, Table

    table = Table("t", MetaData(), Column("id", Float, primary_key=True))
    with pytest.raises(BackupFormatError, match=r"t\.id"):
        TableSpec.of(table)


def test_a_row_line_is_canonical_and_round_trips() -> None:
    block = row_encoder(SPEC)([ROW, [8, None, None, None, None, None]])
    first, second, end = block.split(b"\n")
    assert end == b""
    assert first == (
        b"7\ta\\tb\\nc\\\\d\\r\\b\\f\\v\x01 \xc3\xa9 \xe2\x98\x83 \\\\N\t\\\\x000aff\t"
        b"2026-01-02T03:04:05.000006Z\t2009-03-01\tt"
    )
    assert second == b"8\t\\N\t\\N\t\\N\t\\N\t\\N"
    # Read back as the values SQLite stores (what SQLAlchemy would have written).
    decode = sqlite_row_decoder(SPEC)
    assert decode(first) == (*ROW[:3], "2026-01-02 03:04:05.000006", "2009-03-01", 1)
    assert decode(second) == (8, None, None, None, None, None)


def test_an_empty_string_is_not_null() -> None:
    line = row_encoder(SPEC)([[1, "", b"", None, None, False]]).rstrip(b"\n")
    assert sqlite_row_decoder(SPEC)(line) == (1, "", b"", None, None, 0)


def test_text_needing_no_escape_is_kept_as_is() -> None:
    assert escape_text("Preston Primary School") == "Preston Primary School"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"1\tx", "6 fields"),
        (b"x\ty\t\\N\t\\N\t\\N\tt", "malformed"),
        (b"1\ty\t00ff\t\\N\t\\N\tt", "malformed"),
        (b"1\ty\t\\N\t2026-01-02T03:04:05\t\\N\tt", "malformed"),
        (b"1\ty\t\\N\t\\N\t\\N\tyes", "malformed"),
    ],
)
def test_a_malformed_row_is_refused(line: bytes, message: str) -> None:
    with pytest.raises(BackupFormatError, match=message):
        sqlite_row_decoder(SPEC)(line)


def test_utc_datetime_columns_are_datetimes() -> None:
    from sqlalchemy import Column, MetaData, Table

    table = Table("t", MetaData(), Column("at", UTCDateTime, primary_key=True))
    assert TableSpec.of(table).columns == (("at", ColumnType.DATETIME),)
    assert TableSpec.of(table).serial_key is None
    assert SPEC.serial_key == "id"


# Framing -----------------------------------------------------------------------------------------


def _plain(rows: list[list[object]], *, manifest: bool = True, end: bool = True) -> bytes:
    from reference_app.backup.format import TableDigest

    header = Header("2026-01-01T00:00:00.000000+00:00", "sqlite", "0001", (SPEC,), {"things": 1})
    block = row_encoder(SPEC)(rows)
    digest = TableDigest(SPEC)
    digest.update(block, len(rows))
    out = header.to_line() + table_line("things") + block + (b"\\.\n" if end else b"")
    if manifest:
        sums = {"things": digest.summary()}
        out += Manifest(header.created_at, "sqlite", "0001", sums).to_line()
    return out


def _records(plain: bytes) -> list[object]:
    return list(read_backup([plain[:10], plain[10:]]))


def test_a_well_formed_stream_reads_back() -> None:
    records = _records(_plain([ROW]))
    assert isinstance(records[0], Header)
    assert isinstance(records[1], Rows)
    assert records[1].lines == [row_encoder(SPEC)([ROW]).rstrip(b"\n")]
    assert isinstance(records[2], Manifest)
    assert records[2].tables["things"].rows == 1
    assert records[2].tables["things"].last_key is None  # set by scan_table, not by hand


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.rsplit(b"\n", 2)[0] + b"\n", "no manifest"),
        (lambda p: p + b'{"table":"more"}\n', "after the manifest"),
        (lambda p: p.replace(b"\tt\n", b"\tf\n"), "checksum"),
        (lambda p: p.replace(b'"rows":1', b'"rows":2', 1), "row count"),
        (lambda p: p.replace(b'{"table":"things"}', b'{"table":"other"}'), "out of place"),
        (lambda p: p[:-1], "middle of a line"),
        (lambda p: b"", "empty"),
        (lambda p: b'{"format":"something-else"}\n', "not a ContactPoint backup"),
    ],
)
def test_a_malformed_stream_is_refused(damage: object, message: str) -> None:
    plain = damage(_plain([ROW]))  # type: ignore[operator]
    with pytest.raises(BackupFormatError, match=message):
        _records(plain)


def test_a_table_never_ended_is_cut_short() -> None:
    with pytest.raises(BackupFormatError, match="cut short"):
        _records(_plain([ROW], manifest=False, end=False))
