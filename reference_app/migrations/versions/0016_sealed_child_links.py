"""Sealed child links: the child of an involvement and of a carer link stored as its token.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 06:00:00

``involvements.child_id`` and ``child_carers.child_id`` become ``SealedRef`` columns: a copy of
the database no longer tells which child a service works with or who lives with whom. A token
cannot refer to ``children.id``, so their foreign keys (and ON DELETE CASCADE) go: retention
deletes a purged child's links itself. Existing rows are sealed with the instance's keys, so a
populated registry upgrades only through ``contactpoint db upgrade`` with its keys file.
Involvements get an index by organisation: an organisation's export scope now starts there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from reference_app.kit.sealing import Sealer, SealingUnbound, sealer_for

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_BATCH = 5000


def _sealer() -> Sealer:
    try:
        return sealer_for(op.get_bind().dialect)
    except SealingUnbound:
        raise RuntimeError(
            "this registry holds involvements or carer links, whose child references are now "
            "sealed with the instance's keys: run `contactpoint db upgrade` with the instance's "
            "keys file (CONTACTPOINT_KEYS_FILE)"
        ) from None


def _convert(
    table: str,
    keys: Sequence[str],
    convert: Callable[[Sealer, Any], Any],
    new_type: sa.types.TypeEngine[Any],
) -> None:
    """Fill a new ``child_ref`` column of ``table`` with each row's converted ``child_id``,
    a page of rows at a time in key order (a registry holds millions)."""
    bind = op.get_bind()
    held = bind.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar()
    sealer = _sealer() if held else None
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("child_ref", new_type, nullable=True))
    if sealer is None:
        return
    rows_of = sa.table(table, *(sa.column(k) for k in keys), sa.column("child_id"))
    key = [rows_of.c[k] for k in keys]
    page = sa.select(*key, rows_of.c.child_id).order_by(*key).limit(_BATCH)
    target = sa.table(table, *(sa.column(k) for k in keys), sa.column("child_ref"))
    update = (
        sa.update(target)
        .where(*(target.c[k] == sa.bindparam(f"old_{k}") for k in keys))
        .values(child_ref=sa.bindparam("ref"))
    )
    rows = bind.execute(page).all()
    while rows:
        bind.execute(
            update,
            [
                {
                    **{f"old_{k}": value for k, value in zip(keys, row[:-1], strict=True)},
                    "ref": convert(sealer, row[-1]),
                }
                for row in rows
            ],
        )
        rows = bind.execute(page.where(sa.tuple_(*key) > sa.tuple_(*rows[-1][:-1]))).all()


def upgrade() -> None:
    _convert(
        "involvements",
        ["id"],
        lambda s, v: s.ref(str(v), "involvements.child_id"),
        sa.LargeBinary(),
    )
    with op.batch_alter_table("involvements") as batch:
        batch.drop_constraint("fk_involvements_child_id_children", type_="foreignkey")
        batch.drop_index("ix_involvements_child_org")
        batch.drop_column("child_id")
        batch.alter_column(
            "child_ref", new_column_name="child_id", existing_type=sa.LargeBinary(), nullable=False
        )
    with op.batch_alter_table("involvements") as batch:
        batch.create_index("ix_involvements_child_org", ["child_id", "organisation_id"])
        batch.create_index("ix_involvements_organisation", ["organisation_id"])

    _convert(
        "child_carers",
        ["child_id", "carer_id"],
        lambda s, v: s.ref(str(v), "child_carers.child_id"),
        sa.LargeBinary(),
    )
    with op.batch_alter_table("child_carers") as batch:
        batch.drop_constraint("fk_child_carers_child_id_children", type_="foreignkey")
        batch.drop_constraint("pk_child_carers", type_="primary")
        batch.drop_column("child_id")
        batch.alter_column(
            "child_ref", new_column_name="child_id", existing_type=sa.LargeBinary(), nullable=False
        )
    with op.batch_alter_table("child_carers") as batch:
        batch.create_primary_key("pk_child_carers", ["child_id", "carer_id"])


def downgrade() -> None:
    # Links whose child is gone could not refer to it again: they are dropped, as the cascade
    # would have dropped them.
    _convert(
        "child_carers",
        ["child_id", "carer_id"],
        lambda s, v: s.open_ref(v, "child_carers.child_id"),
        sa.String(13),
    )
    op.execute("DELETE FROM child_carers WHERE child_ref NOT IN (SELECT id FROM children)")
    with op.batch_alter_table("child_carers") as batch:
        batch.drop_constraint("pk_child_carers", type_="primary")
        batch.drop_column("child_id")
        batch.alter_column(
            "child_ref", new_column_name="child_id", existing_type=sa.String(13), nullable=False
        )
    with op.batch_alter_table("child_carers") as batch:
        batch.create_primary_key("pk_child_carers", ["child_id", "carer_id"])
        batch.create_foreign_key(
            "fk_child_carers_child_id_children",
            "children",
            ["child_id"],
            ["id"],
            ondelete="CASCADE",
        )

    _convert(
        "involvements",
        ["id"],
        lambda s, v: s.open_ref(v, "involvements.child_id"),
        sa.String(13),
    )
    op.execute("DELETE FROM involvements WHERE child_ref NOT IN (SELECT id FROM children)")
    with op.batch_alter_table("involvements") as batch:
        batch.drop_index("ix_involvements_organisation")
        batch.drop_index("ix_involvements_child_org")
        batch.drop_column("child_id")
        batch.alter_column(
            "child_ref", new_column_name="child_id", existing_type=sa.String(13), nullable=False
        )
    with op.batch_alter_table("involvements") as batch:
        batch.create_index("ix_involvements_child_org", ["child_id", "organisation_id"])
        batch.create_foreign_key(
            "fk_involvements_child_id_children",
            "children",
            ["child_id"],
            ["id"],
            ondelete="CASCADE",
        )
