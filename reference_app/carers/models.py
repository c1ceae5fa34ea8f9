"""Parents and carers, and their link to each child."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base
from reference_app.kit.sealing import SealedRef


class Relationship(StrEnum):
    FATHER = "father"
    FOSTER_CARER = "foster_carer"
    GRANDPARENT = "grandparent"
    GUARDIAN = "guardian"
    MOTHER = "mother"
    OTHER = "other"
    STEP_PARENT = "step_parent"


class Carer(Base):
    __tablename__ = "carers"

    id: Mapped[int] = mapped_column(primary_key=True)
    given_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    family_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class ChildCarer(Base):
    __tablename__ = "child_carers"

    # Sealed: a copy of the database cannot tell whose carer this is, nor, through a shared
    # carer, which children live together.
    child_id: Mapped[str] = mapped_column(SealedRef("child_carers.child_id"), primary_key=True)
    carer_id: Mapped[int] = mapped_column(
        ForeignKey("carers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    relationship: Mapped[str] = mapped_column(String(20))
    parental_responsibility: Mapped[bool] = mapped_column(Boolean, default=False)
