"""Household shielding: a child sharing an address or a carer with a shielded child.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-06 02:55:00

Existing rows start unflagged: the flag comes from decrypted addresses and carer links, which no
SQL can compare (random nonces), so ``children.service.refresh_all_households`` recomputes it
with the keys; the synthetic loader writes it directly.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("household_shielded", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_column("household_shielded")
