"""Usage limits, harvesting and snooping detection, alert workflow.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detector_cursors",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_detector_cursors")),
    )
    op.create_table(
        "limit_counters",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_limit_counters")),
    )
    op.create_index(
        op.f("ix_limit_counters_expires_at"), "limit_counters", ["expires_at"], unique=False
    )
    op.create_table(
        "limit_members",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("expires_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", "member", name=op.f("pk_limit_members")),
    )
    op.create_index(
        op.f("ix_limit_members_expires_at"), "limit_members", ["expires_at"], unique=False
    )
    op.create_table(
        "risk_scores",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("alerted_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.Column("suspended_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_risk_scores")),
    )
    op.create_index(op.f("ix_risk_scores_day"), "risk_scores", ["day"], unique=False)
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(sa.Column("details", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("updated_at", reference_app.kit.db.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("handled_by", sa.Integer(), nullable=True))
    with op.batch_alter_table("practitioners") as batch_op:
        batch_op.add_column(sa.Column("family_name_bidx", sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("home_postcode_bidx", sa.LargeBinary(length=16), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("practitioners") as batch_op:
        batch_op.drop_column("home_postcode_bidx")
        batch_op.drop_column("family_name_bidx")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("handled_by")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("details")
    op.drop_index(op.f("ix_risk_scores_day"), table_name="risk_scores")
    op.drop_table("risk_scores")
    op.drop_index(op.f("ix_limit_members_expires_at"), table_name="limit_members")
    op.drop_table("limit_members")
    op.drop_index(op.f("ix_limit_counters_expires_at"), table_name="limit_counters")
    op.drop_table("limit_counters")
    op.drop_table("detector_cursors")
