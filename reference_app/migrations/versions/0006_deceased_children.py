"""Deceased children: when an LA recorded a child's death (no date of death is held).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 13:47:37
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deceased_recorded_at", reference_app.kit.db.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_column("deceased_recorded_at")
