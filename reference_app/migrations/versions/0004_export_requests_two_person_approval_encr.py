"""Export requests: two-person approval, encrypted watermarked downloads.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("scope_kind", sa.String(length=20), nullable=False),
        sa.Column("scope_organisation_id", sa.Integer(), nullable=True),
        sa.Column("scope_min_age", sa.Integer(), nullable=True),
        sa.Column("scope_max_age", sa.Integer(), nullable=True),
        sa.Column("justification_enc", sa.LargeBinary(), nullable=False),
        sa.Column("recipient_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("recipient_public_key", sa.Text(), nullable=False),
        sa.Column("recipient_fingerprint", sa.String(length=16), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.Column("expires_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("downloaded_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.Column("downloaded_rows", sa.Integer(), nullable=True),
        sa.Column("download_sha256", sa.String(length=64), nullable=True),
        sa.Column("download_encrypted", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["practitioners.id"],
            name=op.f("fk_export_requests_decided_by_practitioners"),
        ),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["local_authorities.id"],
            name=op.f("fk_export_requests_local_authority_id_local_authorities"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["practitioners.id"],
            name=op.f("fk_export_requests_requested_by_practitioners"),
        ),
        sa.ForeignKeyConstraint(
            ["scope_organisation_id"],
            ["organisations.id"],
            name=op.f("fk_export_requests_scope_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_requests")),
    )
    op.create_index(
        op.f("ix_export_requests_local_authority_id"),
        "export_requests",
        ["local_authority_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_export_requests_requested_by"), "export_requests", ["requested_by"], unique=False
    )
    op.create_table(
        "export_watermarks",
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["export_requests.id"],
            name=op.f("fk_export_watermarks_export_id_export_requests"),
        ),
        sa.PrimaryKeyConstraint("child_id", name=op.f("pk_export_watermarks")),
    )
    op.create_index(
        op.f("ix_export_watermarks_export_id"), "export_watermarks", ["export_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_export_watermarks_export_id"), table_name="export_watermarks")
    op.drop_table("export_watermarks")
    op.drop_index(op.f("ix_export_requests_requested_by"), table_name="export_requests")
    op.drop_index(op.f("ix_export_requests_local_authority_id"), table_name="export_requests")
    op.drop_table("export_requests")
