"""The database-backed limit store's tables: windowed counters and expiring sets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime


class LimitCounter(Base):
    """A counter for one key in one window (the window is part of the key)."""

    __tablename__ = "limit_counters"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LimitMember(Base):
    """A member of an expiring set (distinct children viewed today, searched postcodes...).

    Members are keyed hashes, never a child's id or a searched value: the limits service hashes
    them before they reach any store. Rows written before 0017 named children in clear; they
    expire within the day they were written for.
    """

    __tablename__ = "limit_members"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    member: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
