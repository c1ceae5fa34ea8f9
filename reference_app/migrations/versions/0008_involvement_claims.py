"""Involvement claims: a practitioner's registration waits for the child's LA to confirm it.

Involvements already held were registered before claims needed confirming; they are marked
confirmed as of their creation, so no view they allowed is narrowed by the upgrade.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("involvements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirmed_at", reference_app.kit.db.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("confirmed_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_involvements_confirmed_by_practitioners"),
            "practitioners",
            ["confirmed_by"],
            ["id"],
        )
    op.execute("UPDATE involvements SET confirmed_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("involvements", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_involvements_confirmed_by_practitioners"), type_="foreignkey"
        )
        batch_op.drop_column("confirmed_by")
        batch_op.drop_column("confirmed_at")
