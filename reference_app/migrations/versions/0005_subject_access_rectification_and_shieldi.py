"""Subject access, rectification and shielding requests, retention.

Change requests with their decision trail; an index of the children each search returned, so a
subject access pack finds those searches without scanning the trail (append-only on PostgreSQL,
like the trail); and an index of archived children for the retention purge.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_search_hits",
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("child_id", "event_id", name=op.f("pk_audit_search_hits")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The guard function comes from 0001; it refuses UPDATE, DELETE and TRUNCATE.
        op.execute(
            "CREATE TRIGGER audit_search_hits_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON audit_search_hits FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=15), nullable=False),
        sa.Column("raised_by", sa.Integer(), nullable=False),
        sa.Column("raised_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("proposed_enc", sa.LargeBinary(), nullable=True),
        sa.Column("justification_enc", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.Column("decision_note_enc", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.id"],
            name=op.f("fk_change_requests_child_id_children"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["practitioners.id"],
            name=op.f("fk_change_requests_decided_by_practitioners"),
        ),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["local_authorities.id"],
            name=op.f("fk_change_requests_local_authority_id_local_authorities"),
        ),
        sa.ForeignKeyConstraint(
            ["raised_by"],
            ["practitioners.id"],
            name=op.f("fk_change_requests_raised_by_practitioners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
    )
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_requests_child_id"), ["child_id"], unique=False)
        batch_op.create_index(
            "ix_change_requests_la_status", ["local_authority_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_change_requests_raised_by"), ["raised_by"], unique=False
        )
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.create_index(
            "ix_children_archived_at",
            ["archived_at"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NOT NULL"),
            sqlite_where=sa.text("archived_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_index("ix_children_archived_at")
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_requests_raised_by"))
        batch_op.drop_index("ix_change_requests_la_status")
        batch_op.drop_index(batch_op.f("ix_change_requests_child_id"))
    op.drop_table("change_requests")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_search_hits_append_only ON audit_search_hits")
    op.drop_table("audit_search_hits")
