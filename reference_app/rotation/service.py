"""Key status, the re-encryption pass and key retirement.

The pass reads a batch of rows with a value not under the current key (one short transaction),
decrypts and re-encrypts those values outside any transaction, then writes each row back in a
transaction of its own batch, only where the row still holds what was read: a row the serving
registry changed meanwhile keeps the registry's write (new writes use the current key anyway,
and anything still old is found by the next pass). Every row is always either its old or its
new ciphertext, both readable while both keys are held, so a pass stopped anywhere leaves the
registry whole, and running it again picks up what is left. A second full pass rewrites nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from reference_app.kit.crypto import DecryptionError, FieldCipher
from reference_app.kit.keys import Keyring
from reference_app.kit.progress import Progress
from reference_app.rotation import repository
from reference_app.rotation.repository import SealedTable

DEFAULT_BATCH = 1000


@dataclass
class KeyStatus:
    """How many ciphertexts each field key seals: rewritable columns, and the audit trail."""

    current: str
    held: list[str]
    columns: dict[str, dict[str, int]]  # "children.given_name_enc" -> key id -> values
    audit_texts: dict[str, int]  # key id -> sealed texts in the audit trail
    audit_events: dict[str, int]  # key id -> audit events holding such text

    def rewritable(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.columns.values():
            total.update(counts)
        return total

    def stale(self) -> int:
        """Rewritable values not under the current key."""
        return sum(n for kid, n in self.rewritable().items() if kid != self.current)

    def unknown(self) -> list[str]:
        """Key ids found in the database that the keys document does not hold."""
        seen = set(self.rewritable()) | set(self.audit_texts)
        return sorted(seen - set(self.held))

    def retirable(self) -> list[str]:
        """Held keys, not current, that nothing in the database uses."""
        used = self.rewritable()
        return [
            kid
            for kid in self.held
            if kid != self.current and not used[kid] and not self.audit_events.get(kid)
        ]

    def kept_for_audit(self) -> dict[str, int]:
        """Keys only the audit trail still uses: key id -> events (kept while those are)."""
        used = self.rewritable()
        return {
            kid: self.audit_events[kid]
            for kid in self.held
            if kid != self.current and not used[kid] and self.audit_events.get(kid)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "held": self.held,
            "columns": self.columns,
            "rewritable_by_key": dict(sorted(self.rewritable().items())),
            "not_under_current": self.stale(),
            "audit_trail": {
                "sealed_texts_by_key": self.audit_texts,
                "events_by_key": self.audit_events,
            },
            "retirable": self.retirable(),
            "kept_for_audit_trail": self.kept_for_audit(),
            "unknown_keys": self.unknown(),
        }


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads, its transaction ended at once (SQLite's write lock with it)."""
    with engine.connect() as conn:
        try:
            yield conn
        finally:
            conn.rollback()


def status(engine: Engine, keyring: Keyring) -> KeyStatus:
    held = sorted(keyring.field_keys)
    columns: dict[str, dict[str, int]] = {}
    with _reading(engine) as conn:
        for sealed in repository.TABLES:
            for name, counts in repository.count_by_key(conn, sealed, held).items():
                columns[f"{sealed.name}.{name}"] = dict(sorted(counts.items()))
        texts, events = repository.audit_sealed_text(conn)
    return KeyStatus(
        current=keyring.field_key_current,
        held=held,
        columns=columns,
        audit_texts=dict(sorted(texts.items())),
        audit_events=dict(sorted(events.items())),
    )


@dataclass
class PassReport:
    """What one re-encryption pass did."""

    current: str
    batch: int
    rows_to_do: int = 0
    rows_rewritten: int = 0
    values_rewritten: int = 0
    # Rows changed by the registry between the read and the write: left as it wrote them.
    rows_left: int = 0
    batches: int = 0
    seconds: float = 0.0
    by_column: Counter[str] = field(default_factory=Counter)
    # Values that would not decrypt (a key not held, a damaged value): left untouched.
    unreadable: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "batch": self.batch,
            "batches": self.batches,
            "rows_to_do": self.rows_to_do,
            "rows_rewritten": self.rows_rewritten,
            "values_rewritten": self.values_rewritten,
            "rows_left_changed_meanwhile": self.rows_left,
            "unreadable_values": dict(sorted(self.unreadable.items())),
            "values_by_column": dict(sorted(self.by_column.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_rewritten / self.seconds) if self.seconds else 0,
        }


def reseal(
    cipher: FieldCipher,
    sealed: SealedTable,
    rows: list[tuple[Any, ...]],
    current: str,
    report: PassReport,
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """New ciphertexts for every value of ``rows`` not under ``current``, grouped by which
    columns a row rewrites: each row's key, and its old and new value of each such column."""
    prefix = repository.prefix_of(current)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, *values in rows:
        params: dict[str, Any] = {"row_key": key}
        names: list[str] = []
        for c, value in zip(sealed.columns, values, strict=True):
            if value is None:
                continue
            old = bytes(value)
            if old.startswith(prefix):
                continue
            try:
                new = cipher.encrypt(cipher.decrypt(old, c.context), c.context)
            except DecryptionError:
                report.unreadable[f"{sealed.name}.{c.column}"] += 1
                continue
            names.append(c.column)
            params[f"old_{c.column}"] = old
            params[f"new_{c.column}"] = new
        if names:
            groups.setdefault(tuple(names), []).append(params)
    return groups


def reencrypt(
    engine: Engine,
    keyring: Keyring,
    *,
    batch: int = DEFAULT_BATCH,
    progress: bool = True,
) -> PassReport:
    """Rewrite every rewritable value not under the current field key under it."""
    current = keyring.field_key_current
    cipher = FieldCipher(keyring.field_keys, current)
    report = PassReport(current=current, batch=batch)
    began = time.perf_counter()
    with _reading(engine) as conn:
        report.rows_to_do = sum(
            repository.count_stale_rows(conn, sealed, current) for sealed in repository.TABLES
        )
    with Progress("reencrypt", report.rows_to_do, "rows", enabled=progress) as bar:
        for sealed in repository.TABLES:
            after = None
            while True:
                with _reading(engine) as conn:
                    rows = repository.stale_rows(conn, sealed, current, after, batch)
                if not rows:
                    break
                after = rows[-1][0]
                groups = reseal(cipher, sealed, rows, current, report)
                _write(engine, sealed, groups, report)
                report.batches += 1
                bar.update(len(rows))
    report.seconds = time.perf_counter() - began
    return report


def _write(
    engine: Engine,
    sealed: SealedTable,
    groups: dict[tuple[str, ...], list[dict[str, Any]]],
    report: PassReport,
) -> None:
    """One batch in one transaction: every row written, or (on failure) none."""
    written: dict[tuple[str, ...], int] = {}
    with engine.begin() as conn:
        for names, params in groups.items():
            written[names] = repository.write_if_unchanged(conn, sealed, names, params)
    for names, params in groups.items():
        report.rows_rewritten += written[names]
        report.rows_left += len(params) - written[names]
        report.values_rewritten += written[names] * len(names)
        for name in names:
            report.by_column[f"{sealed.name}.{name}"] += written[names]


class RetireRefused(Exception):
    """A key cannot be retired: it is current, or something still uses it."""


def check_retirable(state: KeyStatus, kid: str) -> None:
    """Refuse unless ``kid`` is held, not current, and no value in the database uses it."""
    if kid == state.current:
        raise RetireRefused(f"{kid} is the current field key: rotate to a new one first")
    in_use = state.rewritable()[kid]
    if in_use:
        raise RetireRefused(
            f"{in_use:,} value(s) in the registry's tables are still under {kid}: run "
            "`contactpoint-registry keys reencrypt` (again, if rows changed during the last "
            "pass), then retire"
        )
    events = state.audit_events.get(kid, 0)
    if events:
        raise RetireRefused(
            f"{events:,} audit event(s) hold text sealed under {kid}. The audit trail is "
            "hash-chained and its events are immutable, so that text cannot be re-encrypted: "
            f"{kid} must be kept as long as those events are kept"
        )


def without_key(document: dict[str, Any], kid: str) -> dict[str, Any]:
    """The keys document with field key ``kid`` removed, all else as it was."""
    field_keys = {k: v for k, v in document["field_keys"].items() if k != kid}
    return {**document, "field_keys": field_keys}
