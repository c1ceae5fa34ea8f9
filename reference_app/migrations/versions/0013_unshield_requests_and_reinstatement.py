"""Two-person unshielding and reinstatement: pending unshield requests, and the first of the
two data managers a reinstatement needs, on the alert it goes through.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unshield_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.id"],
            name=op.f("fk_unshield_requests_child_id_children"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["practitioners.id"],
            name=op.f("fk_unshield_requests_decided_by_practitioners"),
        ),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["local_authorities.id"],
            name=op.f("fk_unshield_requests_local_authority_id_local_authorities"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["practitioners.id"],
            name=op.f("fk_unshield_requests_requested_by_practitioners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unshield_requests")),
    )
    with op.batch_alter_table("unshield_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_unshield_requests_child_id"), ["child_id"], unique=False
        )
        batch_op.create_index(
            "ux_unshield_requests_pending",
            ["child_id"],
            unique=True,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reinstatement_requested_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reinstatement_requested_at", reference_app.kit.db.UTCDateTime(), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("reinstatement_requested_at")
        batch_op.drop_column("reinstatement_requested_by")
    with op.batch_alter_table("unshield_requests", schema=None) as batch_op:
        batch_op.drop_index("ux_unshield_requests_pending")
        batch_op.drop_index(batch_op.f("ix_unshield_requests_child_id"))
    op.drop_table("unshield_requests")
