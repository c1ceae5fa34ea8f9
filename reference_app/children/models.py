"""The child record: encrypted personal fields, search blind indexes, shield, archive, death."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, event, inspect, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.attributes import flag_modified

from reference_app.kit.db import Base, UTCDateTime
from reference_app.kit.sealing import SealedFlag, SealedRef


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    NOT_KNOWN = "not_known"


class Child(Base):
    __tablename__ = "children"
    __table_args__ = (
        Index("ix_children_family_dob", "family_name_bidx", "date_of_birth_bidx"),
        Index("ix_children_family_given", "family_name_bidx", "given_name_bidx"),
        # A surname search matches phonetically too ("Smith" finds "Smyth"): a common surname's
        # sound holds tens of thousands of children nationally, so the second criterion must be
        # in the phonetic index as well, or each search reads them all.
        Index("ix_children_phonetic_dob", "family_name_phonetic_bidx", "date_of_birth_bidx"),
        Index("ix_children_phonetic_given", "family_name_phonetic_bidx", "given_name_bidx"),
        Index("ix_children_postcode", "postcode_bidx"),
        # Retention finds the records due for purge without scanning the live ones.
        Index(
            "ix_children_archived_at",
            "archived_at",
            postgresql_where=text("archived_at IS NOT NULL"),
            sqlite_where=text("archived_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(13), primary_key=True)
    local_authority_id: Mapped[int] = mapped_column(ForeignKey("local_authorities.id"), index=True)
    gender: Mapped[str] = mapped_column(String(10))
    given_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    family_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    date_of_birth_enc: Mapped[bytes] = mapped_column(LargeBinary)
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)  # JSON: lines, town, postcode
    given_name_bidx: Mapped[bytes] = mapped_column(LargeBinary(16))
    family_name_bidx: Mapped[bytes] = mapped_column(LargeBinary(16))
    family_name_phonetic_bidx: Mapped[bytes] = mapped_column(LargeBinary(16))
    date_of_birth_bidx: Mapped[bytes] = mapped_column(LargeBinary(16))
    postcode_bidx: Mapped[bytes] = mapped_column(LargeBinary(16))
    # Both flags are sealed (a copy of the database must not say which children are shielded),
    # so no query can filter on them: the repository decides after reading.
    shielded: Mapped[bool] = mapped_column(SealedFlag("children.shielded"), default=False)
    # Shares an address or a carer with another shielded child, so shielding protects it too
    # (the address and carers would lead to the shielded child). Kept by
    # ``children.service.refresh_households`` whenever a shield, an address or a carer link
    # changes: addresses are encrypted with a random nonce, so no query can compare them.
    household_shielded: Mapped[bool] = mapped_column(
        SealedFlag("children.household_shielded"), default=False
    )
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the LA recorded that the child has died; no date of death is held.
    deceased_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The start of the UTC day only (``kit.clock.start_of_day``): an exact time would match the
    # row to the audit event of the change, a shield among them.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def protected(self) -> bool:
        """Shielded, or in a shielded child's household: what shielding withholds."""
        return self.shielded or self.household_shielded

    @property
    def closed(self) -> bool:
        """Archived or deceased: for the owning LA's data managers only, and never exported."""
        return self.archived_at is not None or self.deceased_recorded_at is not None


@event.listens_for(Child, "before_update")
def _reseal_flags(mapper: Any, connection: Any, child: Child) -> None:
    """Seal both flags afresh whenever the row changes: two copies of the database taken
    before and after a shield then differ in the same columns as for any other change."""
    unloaded = inspect(child).unloaded  # an expired flag is not read back in mid-flush
    for name in ("shielded", "household_shielded"):
        if name not in unloaded:
            flag_modified(child, name)


class UnshieldStatus(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    WITHDRAWN = "withdrawn"


class UnshieldRequest(Base):
    """A data manager's request to lift a child's shield, awaiting a second data manager of the
    LA: until approved the child stays shielded (one person alone never exposes a hidden
    address)."""

    __tablename__ = "unshield_requests"
    __table_args__ = (
        # At most one pending request a child: a second request joins the first.
        Index(
            "ux_unshield_requests_pending",
            "child_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Sealed, so a copy of the database does not name the shielded child; hence no foreign key,
    # and retention deletes a purged child's requests itself.
    child_id: Mapped[str] = mapped_column(SealedRef("unshield_requests.child_id"), index=True)
    local_authority_id: Mapped[int] = mapped_column(ForeignKey("local_authorities.id"))
    status: Mapped[str] = mapped_column(String(10), default=UnshieldStatus.PENDING)
    requested_by: Mapped[int] = mapped_column(ForeignKey("practitioners.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The alert raised to the LA's team, so the approver can find the request from it.
    alert_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
