"""Alerts raised for a local authority's management team to review."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime
from reference_app.kit.sealing import SealedRef


class AlertKind(StrEnum):
    CANARY_ACCESS = "canary_access"
    CREDENTIAL_GUESSING = "credential_guessing"
    EXPORT_VIOLATION = "export_violation"
    HARVESTING = "harvesting"
    INVOLVEMENT_CLAIM = "involvement_claim"
    OVERRIDE = "override"
    SNOOPING = "snooping"
    UNSHIELD_REQUESTED = "unshield_requested"


class AlertSeverity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    LOW = "low"
    MEDIUM = "medium"


class AlertStatus(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    INVESTIGATING = "investigating"
    OPEN = "open"


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(15), default=AlertStatus.OPEN)
    subject_user_id: Mapped[int] = mapped_column(Integer, index=True)
    local_authority_id: Mapped[int] = mapped_column(Integer, index=True)
    # A reference (child id, audit event id), never the child's personal data; the child's id is
    # sealed, so a copy of the database does not tell which child an alert (a canary's, an
    # unshield's, a snooper's view) is about.
    child_id: Mapped[str | None] = mapped_column(SealedRef("alerts.child_id"))
    audit_event_id: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[str] = mapped_column(String(200))
    # JSON: rule names, scores and counts behind the alert; references only.
    details: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The data manager who last moved the alert on (acknowledged, investigated, closed).
    handled_by: Mapped[int | None] = mapped_column(Integer)
    # The first of the two data managers a reinstatement of the subject needs, while the second
    # is awaited; cleared once the subject's status changes.
    reinstatement_requested_by: Mapped[int | None] = mapped_column(Integer)
    reinstatement_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Canary(Base):
    """A honeytoken child: no legitimate workflow touches it, so any view is proof of misuse."""

    __tablename__ = "canaries"

    child_id: Mapped[str] = mapped_column(
        ForeignKey("children.id", ondelete="CASCADE"), primary_key=True
    )
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
