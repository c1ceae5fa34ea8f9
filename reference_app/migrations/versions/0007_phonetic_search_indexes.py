"""Phonetic surname search indexes carry the second criterion (date of birth or given name).

With the phonetic code alone indexed, a search for a common surname read every child sharing its
sound (58,000 rows for one surname at 11 million children, 140 ms) to keep the ten with the
right date of birth.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 16:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_children_phonetic_dob",
        "children",
        ["family_name_phonetic_bidx", "date_of_birth_bidx"],
    )
    op.create_index(
        "ix_children_phonetic_given",
        "children",
        ["family_name_phonetic_bidx", "given_name_bidx"],
    )
    op.drop_index("ix_children_phonetic", table_name="children")


def downgrade() -> None:
    op.create_index("ix_children_phonetic", "children", ["family_name_phonetic_bidx"])
    op.drop_index("ix_children_phonetic_given", table_name="children")
    op.drop_index("ix_children_phonetic_dob", table_name="children")
