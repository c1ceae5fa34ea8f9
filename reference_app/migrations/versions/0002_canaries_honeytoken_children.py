"""Canaries: honeytoken children whose every view raises an alert.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:28:07.256024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canaries",
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column("registered_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.id"],
            name=op.f("fk_canaries_child_id_children"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", name=op.f("pk_canaries")),
    )


def downgrade() -> None:
    op.drop_table("canaries")
