"""Administrator separation: pending roles, enrolment codes, who created and re-roled accounts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("practitioners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("role_granted_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("role_confirmed_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("role_granted_at", reference_app.kit.db.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("role_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("enrolment_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("enrolment_expires_at", reference_app.kit.db.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("practitioners", schema=None) as batch_op:
        batch_op.drop_column("enrolment_expires_at")
        batch_op.drop_column("enrolment_code_hash")
        batch_op.drop_column("role_pending")
        batch_op.drop_column("role_granted_at")
        batch_op.drop_column("role_confirmed_by")
        batch_op.drop_column("role_granted_by")
        batch_op.drop_column("created_by")
