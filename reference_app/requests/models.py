"""Rectification, shielding and unshielding requests, and their decision trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime
from reference_app.kit.sealing import SealedRef


class RequestKind(StrEnum):
    RECTIFICATION = "rectification"
    SHIELDING = "shielding"
    UNSHIELDING = "unshielding"


class RequestStatus(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    REJECTED = "rejected"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ChangeRequest(Base):
    """A family's request, raised by a practitioner or the LA, decided by the LA's team.

    The proposed values, the justification and the decision note are encrypted like the record
    they concern; the request goes when retention purges the child.
    """

    __tablename__ = "change_requests"
    __table_args__ = (Index("ix_change_requests_la_status", "local_authority_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Sealed (a shielding request names a child to shield); no foreign key, so retention deletes
    # a purged child's requests itself.
    child_id: Mapped[str] = mapped_column(SealedRef("change_requests.child_id"), index=True)
    local_authority_id: Mapped[int] = mapped_column(ForeignKey("local_authorities.id"))
    kind: Mapped[str] = mapped_column(String(15))
    raised_by: Mapped[int] = mapped_column(Integer, ForeignKey("practitioners.id"), index=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # JSON of the ChildCorrect fields, for a rectification; None otherwise.
    proposed_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    justification_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(10), default=RequestStatus.PENDING)
    decided_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("practitioners.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
