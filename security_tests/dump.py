"""What a stolen copy of the registry's database tells about a child, read as a thief would.

The thief has the copy and no keys. To learn a fact about a child they know (its identifier, or
the row their search for it found), they look for the child outside ``children``: its id in
clear in another table (an involvement with a sexual-health service, a carer link shared with a
sibling, an audit event saying who viewed it); a value of its row repeated elsewhere (a blind
index, a ciphertext); a moment of its row equal to a moment in another table (the audit event of
the change that stamped it). Inside ``children`` they compare the row with rows like it: a
column that sets a shielded child apart from two ordinary children made the same way tells
who is shielded.

``scan`` runs those queries in the database itself (equality and substring tests, so a national
table is not pulled over the wire) and returns each way in, with the table and column, never
the value. The caller names the children and the fact each one would give away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, inspect, text
from sqlalchemy.types import DateTime, LargeBinary, String, Text, TypeEngine

CHILDREN = "children"
# Tables that may name a child in clear by design: a honeytoken list names no real child.
NAMES_BY_DESIGN = frozenset({CHILDREN, "canaries", "alembic_version"})


@dataclass(frozen=True)
class Way:
    """One way from a copy to a fact about a child."""

    child: str  # the caller's label for the child ("the shielded child"), never its id
    fact: str  # what the way gives away ("is shielded")
    how: str  # e.g. "involvements.child_id holds its id in clear"

    def __str__(self) -> str:
        return f"{self.child} {self.fact}: {self.how}"


@dataclass(frozen=True)
class Subject:
    """A child the caller made, the fact the copy must not tell, and its ``children`` row."""

    label: str
    fact: str
    child_id: str


def scan(
    conn: Connection,
    subjects: Sequence[Subject],
    controls: Sequence[str],
    *,
    distinguish: Iterable[str] = (),
) -> list[Way]:
    """Every way the copy behind ``conn`` tells a subject's fact.

    ``controls`` are ids of ordinary children made as the subjects were; ``distinguish`` names
    the subjects whose own ``children`` row must look like theirs (a shielded child, a child
    protected as its household). Needs at least two controls for that comparison.
    """
    catalogue = _catalogue(conn)
    rows = _children_rows(conn, [s.child_id for s in subjects] + list(controls))
    ways: list[Way] = []
    for subject in subjects:
        row = rows.get(subject.child_id)
        if row is None:
            ways.append(Way(subject.label, subject.fact, "its children row is missing: unjudged"))
            continue
        ways += _references(conn, catalogue, subject, row, _moments(catalogue, row))
    wanted = set(distinguish)
    if wanted:
        if len(controls) < 2 or any(c not in rows for c in controls):
            raise ValueError("two ordinary children are needed to compare rows with")
        ordinary = [rows[c] for c in controls]
        for subject in subjects:
            if subject.label in wanted and subject.child_id in rows:
                ways += _distinguishers(subject, rows[subject.child_id], ordinary)
    return ways


def _catalogue(conn: Connection) -> dict[str, list[tuple[str, TypeEngine[Any]]]]:
    inspector = inspect(conn)
    return {
        table: [(c["name"], c["type"]) for c in inspector.get_columns(table)]
        for table in sorted(inspector.get_table_names())
    }


def _children_rows(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    query = text("SELECT * FROM children WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    return {str(r.id): dict(r._mapping) for r in conn.execute(query, {"ids": list(ids)})}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _references(
    conn: Connection,
    catalogue: Mapping[str, list[tuple[str, TypeEngine[Any]]]],
    subject: Subject,
    row: Mapping[str, Any],
    moments: list[Any],
) -> list[Way]:
    """The subject's id, its row's stored values and its row's moments, found elsewhere."""
    values = [bytes(v) for v in row.values() if isinstance(v, bytes | memoryview) and len(v) >= 8]
    ways: list[Way] = []
    for table, columns in catalogue.items():
        if table in NAMES_BY_DESIGN:
            continue
        for column, type_ in columns:
            where = f"{table}.{column}"
            how = None
            if isinstance(type_, String | Text):
                if _count(conn, table, column, "LIKE :v", {"v": f"%{subject.child_id}%"}):
                    how = f"{where} holds its id in clear"
            elif isinstance(type_, LargeBinary):
                probes = [subject.child_id.encode("ascii"), *values]
                if _count(conn, table, column, "IN :v", {"v": probes}, expanding=True):
                    how = f"{where} holds its id or a value of its children row"
            elif (
                moments
                and isinstance(type_, DateTime)
                and _count(conn, table, column, "IN :v", {"v": moments}, expanding=True)
            ):
                how = f"{where} holds a moment of its children row (a join by time)"
            if how:
                ways.append(Way(subject.label, subject.fact, how))
    return ways


def _moments(
    catalogue: Mapping[str, list[tuple[str, TypeEngine[Any]]]], row: Mapping[str, Any]
) -> list[Any]:
    """The row's moments as stored (SQLite keeps them as text, PostgreSQL as timestamps)."""
    columns = [name for name, type_ in catalogue.get(CHILDREN, []) if isinstance(type_, DateTime)]
    return [row[c] for c in columns if row.get(c) is not None]


def _count(
    conn: Connection,
    table: str,
    column: str,
    test: str,
    params: dict[str, Any],
    *,
    expanding: bool = False,
) -> int:
    # Table and column names come from the database's own catalogue, not from input.
    query = text(f"SELECT count(*) FROM {_quote(table)} WHERE {_quote(column)} {test}")  # noqa: S608
    if expanding:
        query = query.bindparams(bindparam("v", expanding=True))
    return int(conn.execute(query, params).scalar() or 0)


def _distinguishers(
    subject: Subject, row: Mapping[str, Any], controls: Sequence[Mapping[str, Any]]
) -> list[Way]:
    """Columns where the ordinary children agree and the subject differs: in clear values, or
    in the length of what is stored."""
    ways: list[Way] = []
    for column, value in row.items():
        seen = [c.get(column) for c in controls]
        if isinstance(value, bytes | memoryview):
            lengths = {len(v) if v is not None else -1 for v in seen}
            if len(lengths) == 1 and len(value) not in lengths:
                ways.append(
                    Way(subject.label, subject.fact, f"children.{column} is of another length")
                )
        elif all(v == seen[0] for v in seen) and value != seen[0]:
            ways.append(
                Way(subject.label, subject.fact, f"children.{column} sets it apart from others")
            )
    return ways
