"""Sealed audit references: who viewed whom, and every other child id kept outside the record.

The trail's child ids (events and the search hits index), alerts, and unshield and change
requests become sealed references (``SealedRef``), so a copy of the database tells neither who
viewed whom nor which child an alert or a shielding request is about. Existing rows are sealed
with the instance's keys. Unshield and change requests lose their foreign key to ``children``
(a sealed column cannot have one): retention deletes them with the child.

The trail stays verifiable: the log hashes an event's child id as read, which is the plain id
before and after. Search events' details (``result_ids``, in clear) are not rewritten: details
are hashed as stored, so rewriting them would break the log's proofs. Events from this revision
on list their results sealed.

The limit store's sets of children viewed today now hold keyed hashes; rows written before
this revision hold ids and expire within the day they were written for.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from reference_app.kit.sealing import Sealer, SealingUnbound, sealer_for

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# (table, nullable, foreign key to children dropped here); the column is child_id in each.
SEALED = (
    ("audit_events", True, None),
    ("audit_search_hits", False, None),
    ("alerts", True, None),
    ("unshield_requests", False, "fk_unshield_requests_child_id_children"),
    ("change_requests", False, "fk_change_requests_child_id_children"),
)
# Append-only on PostgreSQL: the owner lifts the guard for the conversion, which changes no
# event's leaf (the log hashes the plain id).
APPEND_ONLY = ("audit_events", "audit_search_hits")
_BATCH = 5000


def _sealer(table: str) -> Sealer:
    try:
        return sealer_for(op.get_bind().dialect)
    except SealingUnbound:
        raise RuntimeError(
            f"{table} holds child ids to seal, and this upgrade has no keys: run "
            "`contactpoint db upgrade` with the instance's keys file (CONTACTPOINT_KEYS_FILE)"
        ) from None


def _convert(table: str, change: Callable[[Sealer, Any], bytes]) -> None:
    """Rewrite every child_id of ``table`` through ``change``, by distinct value."""
    conn = op.get_bind()
    # Untyped columns: values pass as the driver holds them (text or bytes on SQLite).
    target = sa.table(table, sa.column("child_id"))
    values = list(
        conn.execute(
            sa.select(target.c.child_id).distinct().where(target.c.child_id.is_not(None))
        ).scalars()
    )
    if not values:
        return
    sealer = _sealer(table)
    postgres = conn.dialect.name == "postgresql"
    # A map of old value to new, then one UPDATE: a table without an index on child_id (alerts)
    # is read once, not once per child. The map's columns have no type on SQLite, so each value
    # keeps the storage class it had in the table and compares equal to it.
    column = "bytea" if postgres else ""
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE sealing_map (old {column} PRIMARY KEY, new {column} NOT NULL)"
    )
    mapping = sa.table("sealing_map", sa.column("old"), sa.column("new"))
    for start in range(0, len(values), _BATCH):
        conn.execute(
            mapping.insert(),
            [
                {"old": bytes(v) if postgres else v, "new": change(sealer, v)}
                for v in values[start : start + _BATCH]
            ],
        )
    guarded = postgres and table in APPEND_ONLY
    if guarded:
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
    new = sa.select(mapping.c.new).where(mapping.c.old == target.c.child_id).scalar_subquery()
    conn.execute(target.update().values(child_id=new).where(target.c.child_id.is_not(None)))
    if guarded:
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")
    op.execute("DROP TABLE sealing_map")


def _seal(table: str) -> Callable[[Sealer, Any], bytes]:
    def change(sealer: Sealer, stored: Any) -> bytes:
        clear = stored if isinstance(stored, str) else bytes(stored).decode("utf-8")
        return sealer.ref(clear, f"{table}.child_id")

    return change


def _open(table: str) -> Callable[[Sealer, Any], bytes]:
    def change(sealer: Sealer, stored: Any) -> bytes:
        return sealer.open_ref(bytes(stored), f"{table}.child_id").encode("utf-8")

    return change


def upgrade() -> None:
    for table, nullable, foreign_key in SEALED:
        with op.batch_alter_table(table) as batch:
            if foreign_key:
                batch.drop_constraint(foreign_key, type_="foreignkey")
            batch.alter_column(
                "child_id",
                existing_type=sa.String(length=13),
                type_=sa.LargeBinary(),
                existing_nullable=nullable,
                postgresql_using="convert_to(child_id, 'UTF8')",
            )
        _convert(table, _seal(table))


def downgrade() -> None:
    for table, nullable, foreign_key in SEALED:
        _convert(table, _open(table))
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "child_id",
                existing_type=sa.LargeBinary(),
                type_=sa.String(length=13),
                existing_nullable=nullable,
                postgresql_using="convert_from(child_id, 'UTF8')",
            )
            if foreign_key:
                batch.create_foreign_key(
                    foreign_key, "children", ["child_id"], ["id"], ondelete="CASCADE"
                )
