"""Detection state: daily scores per user, and how far into the sealed log the detector has read."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime


class RiskScore(Base):
    """One practitioner's insider-browsing score for one day, with the rules that fired."""

    __tablename__ = "risk_scores"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(40))
    local_authority_id: Mapped[int] = mapped_column(Integer)
    views: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int] = mapped_column(Integer, default=0)
    # JSON {rule: times fired}; rule names only, never personal data.
    rules: Mapped[str] = mapped_column(Text, default="{}")
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DetectorCursor(Base):
    """The last log position (audit_log_entries.seq) a detector has processed."""

    __tablename__ = "detector_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=-1)
