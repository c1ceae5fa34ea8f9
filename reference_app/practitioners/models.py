"""Practitioner accounts, login throttles and server-side sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Practitioner(Base):
    """A user of the registry: one organisation, one local authority, one role."""

    __tablename__ = "practitioners"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    role: Mapped[str] = mapped_column(String(40))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    local_authority_id: Mapped[int] = mapped_column(ForeignKey("local_authorities.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # The last TOTP time step accepted: a code at or before it is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=AccountStatus.ACTIVE)
    # Bumped on every role or status change; sessions from an older version stop working.
    authz_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who created the account and who last gave it its role (None: loaded or bootstrapped), and
    # when the role took effect: an export approver must be established and independent of the
    # requester, so nobody approves through an account they made or re-roled.
    created_by: Mapped[int | None] = mapped_column(Integer)
    role_granted_by: Mapped[int | None] = mapped_column(Integer)
    role_confirmed_by: Mapped[int | None] = mapped_column(Integer)
    role_granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A role that reads child data, given by someone who is not a data manager of the account's
    # LA, holds no permission until such a data manager confirms it.
    role_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A new account's one-time enrolment code (SHA-256 of a random code, never the code itself):
    # the user sets their own password with it, so whoever created the account never knows it.
    enrolment_code_hash: Mapped[str | None] = mapped_column(String(64))
    enrolment_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Blind indexes of the user's own family name and home postcode, so insider-browsing
    # detection can spot a look at a relative's or neighbour's child without holding either.
    family_name_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    home_postcode_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(16))


class LoginThrottle(Base):
    """Failed logins per account key or per source, in a fixed window, with a lock-out time."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginSession(Base):
    """The server-side half of an access token: revoked at logout, suspension or role change."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        ForeignKey("practitioners.id", ondelete="CASCADE"), index=True
    )
    authz_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(64))
