"""Sealed shield flags, and a child's created and updated times to the day.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 06:00:00

``children.shielded`` and ``children.household_shielded`` become AES-GCM ciphertexts
(``kit.sealing.SealedFlag``): a copy of the database no longer says which children are shielded.
Existing rows are sealed with the instance's keys, so a database holding children must be
upgraded through ``contactpoint db upgrade`` with its keys file. ``created_at`` and
``updated_at`` keep only the start of their UTC day: to the microsecond, they matched a child's
row to the audit event of the change (a shield among them). The times cut off are not restored
by a downgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from reference_app.kit.db import UTCDateTime
from reference_app.kit.sealing import Sealer, SealingUnbound, sealer_for

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FLAGS = ("shielded", "household_shielded")
BATCH = 5000


def _day(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _sealer(bind: sa.Connection) -> Sealer | None:
    """The instance's sealer when ``children`` holds rows (None when it is empty)."""
    if bind.execute(sa.text("SELECT id FROM children LIMIT 1")).first() is None:
        return None
    try:
        return sealer_for(bind.dialect)
    except SealingUnbound:
        raise RuntimeError(
            "the children table holds rows whose shield flags must be sealed with the "
            "instance's keys: run `contactpoint db upgrade` with the instance's keys file "
            "(CONTACTPOINT_KEYS_FILE)"
        ) from None


def _children(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> Any:
    """``children`` with its old flags typed ``old`` and the new ones (``<flag>_new``) ``new``."""
    return sa.table(
        "children",
        sa.column("id", sa.String()),
        *(sa.column(name, old) for name in FLAGS),
        *(sa.column(f"{name}_new", new) for name in FLAGS),
        *(sa.column(name, UTCDateTime()) for name in ("created_at", "updated_at")),
    )


def _batches(bind: sa.Connection, children: Any) -> Iterator[list[Any]]:
    """Every child row, a batch at a time in id order (a national registry holds millions)."""
    c = children.c
    after = ""
    while True:
        rows = bind.execute(
            sa.select(c.id, c.shielded, c.household_shielded, c.created_at, c.updated_at)
            .where(c.id > after)
            .order_by(c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].id


def _update(bind: sa.Connection, children: Any, params: list[dict[str, Any]]) -> None:
    names = [name for name in params[0] if name != "key"]
    bind.execute(
        children.update()
        .where(children.c.id == sa.bindparam("key"))
        .values({name: sa.bindparam(name) for name in names}),
        params,
    )


def _rename_new_flags(kind: sa.types.TypeEngine[Any], **household: Any) -> None:
    """Drop the old flag columns and give the new ones their names, not null."""
    with op.batch_alter_table("children") as batch:
        for name in FLAGS:
            batch.drop_column(name)
        for name in FLAGS:
            batch.alter_column(
                f"{name}_new",
                new_column_name=name,
                existing_type=kind,
                nullable=False,
                **(household if name == "household_shielded" else {}),
            )


def upgrade() -> None:
    bind = op.get_bind()
    sealer = _sealer(bind)
    with op.batch_alter_table("children") as batch:
        for name in FLAGS:
            batch.add_column(sa.Column(f"{name}_new", sa.LargeBinary(), nullable=True))
    if sealer is not None:
        children = _children(sa.Boolean(), sa.LargeBinary())
        for rows in _batches(bind, children):
            sealed = {
                name: sealer.flags([bool(row._mapping[name]) for row in rows], f"children.{name}")
                for name in FLAGS
            }
            _update(
                bind,
                children,
                [
                    {
                        "key": row.id,
                        **{f"{name}_new": sealed[name][i] for name in FLAGS},
                        "created_at": _day(row.created_at),
                        "updated_at": _day(row.updated_at),
                    }
                    for i, row in enumerate(rows)
                ],
            )
    _rename_new_flags(sa.LargeBinary())


def downgrade() -> None:
    bind = op.get_bind()
    sealer = _sealer(bind)
    with op.batch_alter_table("children") as batch:
        for name in FLAGS:
            batch.add_column(sa.Column(f"{name}_new", sa.Boolean(), nullable=True))
    if sealer is not None:
        children = _children(sa.LargeBinary(), sa.Boolean())
        for rows in _batches(bind, children):
            _update(
                bind,
                children,
                [
                    {
                        "key": row.id,
                        **{
                            f"{name}_new": sealer.open_flag(row._mapping[name], f"children.{name}")
                            for name in FLAGS
                        },
                    }
                    for row in rows
                ],
            )
    _rename_new_flags(sa.Boolean(), server_default=sa.false())
