"""Every query of key rotation: where field-key ciphertext is stored, counted and rewritten.

The columns are read and written as stored bytes (never through ``SealedFlag``), so the pass
sees what a copy of the database holds and needs no sealer bound to the engine. Whether a value
is under the current key is decided in SQL from its header (``FieldCipher``: version byte,
key-id length, key id), so a pass over a table finds only the rows still to rewrite.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    LargeBinary,
    Table,
    and_,
    bindparam,
    case,
    column,
    func,
    literal,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import TableClause

from reference_app.audit.models import AuditEvent
from reference_app.carers.models import Carer
from reference_app.children.models import Child
from reference_app.exports.models import ExportRequest
from reference_app.practitioners.models import Practitioner
from reference_app.requests.models import ChangeRequest

FORMAT_VERSION = 1  # kit.crypto's ciphertext format


@dataclass(frozen=True)
class Sealed:
    """A column holding field-key ciphertext, and the context it is sealed for."""

    column: str
    context: str


@dataclass(frozen=True)
class SealedTable:
    """A table whose rows the pass rewrites: its key and its sealed columns."""

    source: Table
    columns: tuple[Sealed, ...]

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def key(self) -> str:
        (key,) = self.source.primary_key.columns
        return key.name

    def stored(self) -> TableClause:
        """The key as typed, the sealed columns as the bytes they hold."""
        key = self.source.c[self.key]
        return table(
            self.name,
            column(self.key, key.type),
            *(column(c.column, LargeBinary()) for c in self.columns),
        )


# Every rewritable column sealed with a field key, and its context: `cipher.encrypt` in the
# contexts' services, the generator's bulk loader (the same contexts, and carers.address, which
# only it writes), and the ``SealedFlag`` columns (sealed with the column's name).
TABLES: tuple[SealedTable, ...] = (
    SealedTable(
        Child.__table__,  # type: ignore[arg-type]
        (
            Sealed("given_name_enc", "children.given_name"),
            Sealed("family_name_enc", "children.family_name"),
            Sealed("date_of_birth_enc", "children.date_of_birth"),
            Sealed("address_enc", "children.address"),
            Sealed("shielded", "children.shielded"),
            Sealed("household_shielded", "children.household_shielded"),
        ),
    ),
    SealedTable(
        Carer.__table__,  # type: ignore[arg-type]
        (
            Sealed("given_name_enc", "carers.given_name"),
            Sealed("family_name_enc", "carers.family_name"),
            Sealed("phone_enc", "carers.phone"),
            Sealed("email_enc", "carers.email"),
            Sealed("address_enc", "carers.address"),
        ),
    ),
    SealedTable(
        Practitioner.__table__,  # type: ignore[arg-type]
        (
            Sealed("display_name_enc", "practitioners.display_name"),
            Sealed("email_enc", "practitioners.email"),
            Sealed("totp_secret_enc", "practitioners.totp_secret"),
        ),
    ),
    SealedTable(
        ExportRequest.__table__,  # type: ignore[arg-type]
        (
            Sealed("justification_enc", "export_requests.justification"),
            Sealed("recipient_name_enc", "export_requests.recipient_name"),
        ),
    ),
    SealedTable(
        ChangeRequest.__table__,  # type: ignore[arg-type]
        (
            Sealed("proposed_enc", "change_requests.proposed"),
            Sealed("justification_enc", "change_requests.justification"),
            Sealed("decision_note_enc", "change_requests.decision_note"),
        ),
    ),
)


def prefix_of(kid: str) -> bytes:
    """The header every ciphertext under ``kid`` starts with."""
    return bytes([FORMAT_VERSION, len(kid)]) + kid.encode("ascii")


def key_id(blob: bytes) -> str | None:
    """The key id a value's header names, or None if it is not in the cipher's format."""
    if len(blob) < 2 or blob[0] != FORMAT_VERSION or len(blob) < 2 + blob[1]:
        return None
    return blob[2 : 2 + blob[1]].decode("ascii", "replace")


def _under(value: Any, kid: str) -> ColumnElement[bool]:
    prefix = prefix_of(kid)
    return func.substr(value, 1, len(prefix)) == literal(prefix, LargeBinary())


def _stale(value: Any, current: str) -> ColumnElement[bool]:
    return and_(value.is_not(None), ~_under(value, current))


def count_by_key(
    conn: Connection, sealed: SealedTable, kids: Sequence[str]
) -> dict[str, Counter[str]]:
    """Per column, how many values are under each key: one scan of the table for the known
    ``kids``, and a second look only at values under none of them (an unknown id, a damaged
    header), named by their header."""
    t = sealed.stored()
    aggregates: list[ColumnElement[Any]] = []
    for c in sealed.columns:
        value = t.c[c.column]
        aggregates.append(func.count(value))
        aggregates += [func.sum(case((_under(value, kid), 1), else_=0)) for kid in kids]
    row = conn.execute(select(*aggregates).select_from(t)).one()
    counts: dict[str, Counter[str]] = {}
    width = 1 + len(kids)
    for i, c in enumerate(sealed.columns):
        total, *known = (int(x or 0) for x in row[i * width : (i + 1) * width])
        found = Counter({kid: n for kid, n in zip(kids, known, strict=True) if n})
        if total > sum(known):
            value = t.c[c.column]
            others = select(value).where(value.is_not(None), *(~_under(value, kid) for kid in kids))
            for (blob,) in conn.execute(others):
                found[key_id(bytes(blob)) or "(not a field ciphertext)"] += 1
        counts[c.column] = found
    return counts


def count_stale_rows(conn: Connection, sealed: SealedTable, current: str) -> int:
    t = sealed.stored()
    stale = or_(*(_stale(t.c[c.column], current) for c in sealed.columns))
    return int(conn.execute(select(func.count()).select_from(t).where(stale)).scalar_one())


def stale_rows(
    conn: Connection, sealed: SealedTable, current: str, after: Any, limit: int
) -> list[tuple[Any, ...]]:
    """The next ``limit`` rows after key ``after`` (None: from the start) with a value not under
    ``current``: the key, then every sealed column as stored."""
    t = sealed.stored()
    key = t.c[sealed.key]
    query = select(key, *(t.c[c.column] for c in sealed.columns)).where(
        or_(*(_stale(t.c[c.column], current) for c in sealed.columns))
    )
    if after is not None:
        query = query.where(key > after)
    return [tuple(r) for r in conn.execute(query.order_by(key).limit(limit))]


def write_if_unchanged(
    conn: Connection, sealed: SealedTable, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> int:
    """Set ``columns`` of each row to its new value only where every one still holds the old
    value read (compare-and-set); return how many rows were written. A row the registry changed
    meanwhile is left as the registry wrote it."""
    t = sealed.stored()
    statement = (
        update(t)
        .where(
            t.c[sealed.key] == bindparam("row_key"),
            *(t.c[name] == bindparam(f"old_{name}", type_=LargeBinary()) for name in columns),
        )
        .values({name: bindparam(f"new_{name}", type_=LargeBinary()) for name in columns})
    )
    if not conn.dialect.supports_sane_multi_rowcount:  # one statement a row, each counted
        return sum(conn.execute(statement, params).rowcount for params in rows)
    return int(conn.execute(statement, list(rows)).rowcount)


# The audit trail's sealed free text (``audit.service.sealed_text``): base64 ciphertext under a
# details key ending in ``_enc``, inside the JSON the log hashes.
SEALED_TEXT_MARK = '_enc":"'


def sealed_text_keys(details: Any) -> Iterator[str]:
    """The key id of every sealed text in an event's details (at any depth)."""
    if isinstance(details, dict):
        for name, value in details.items():
            if isinstance(value, str) and name.endswith("_enc"):
                try:
                    kid = key_id(base64.b64decode(value, validate=True))
                except (binascii.Error, ValueError):
                    kid = None
                if kid is not None:
                    yield kid
            else:
                yield from sealed_text_keys(value)
    elif isinstance(details, list):
        for item in details:
            yield from sealed_text_keys(item)


def audit_sealed_text(conn: Connection, batch: int = 5000) -> tuple[Counter[str], Counter[str]]:
    """How many sealed texts of the audit trail are under each key, and in how many events."""
    t = AuditEvent.__table__
    texts: Counter[str] = Counter()
    events: Counter[str] = Counter()
    after = -1
    while True:
        rows = conn.execute(
            select(t.c.id, t.c.details)
            .where(t.c.id > after, t.c.details.contains(SEALED_TEXT_MARK, autoescape=True))
            .order_by(t.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return texts, events
        for event_id, details in rows:
            after = event_id
            kids = list(sealed_text_keys(json.loads(details or "{}")))
            texts.update(kids)
            events.update(set(kids))
