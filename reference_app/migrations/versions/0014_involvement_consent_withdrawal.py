"""A young person's withdrawal of consent on a (sensitive) involvement.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from reference_app.kit.db import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("involvements") as batch:
        batch.add_column(sa.Column("consent_withdrawn_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("involvements") as batch:
        batch.drop_column("consent_withdrawn_at")
