"""Every query on practitioners, sessions and login throttles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reference_app.kit.transitions import advance
from reference_app.localauthorities.models import LocalAuthority
from reference_app.practitioners.models import (
    AccountStatus,
    LoginSession,
    LoginThrottle,
    Practitioner,
)


def by_username(db: Session, username: str) -> Practitioner | None:
    return db.scalars(select(Practitioner).where(Practitioner.username == username)).first()


def by_id(db: Session, practitioner_id: int) -> Practitioner | None:
    return db.get(Practitioner, practitioner_id)


def local_authority(db: Session, la_id: int) -> LocalAuthority | None:
    return db.get(LocalAuthority, la_id)


_SESSIONS = LoginSession.__table__
_PRACTITIONERS = Practitioner.__table__
# Every authenticated request reads this: core SQL, prepared once.
_SESSION_WITH_PRACTITIONER = (
    select(
        _SESSIONS.c.id.label("session_id"),
        _SESSIONS.c.authz_version.label("session_authz_version"),
        _SESSIONS.c.expires_at,
        _SESSIONS.c.revoked_at,
        _PRACTITIONERS.c.id.label("user_id"),
        _PRACTITIONERS.c.username,
        _PRACTITIONERS.c.status,
        _PRACTITIONERS.c.authz_version.label("user_authz_version"),
        _PRACTITIONERS.c.role,
        _PRACTITIONERS.c.role_pending,
        _PRACTITIONERS.c.organisation_id,
        _PRACTITIONERS.c.local_authority_id,
    )
    .join(_PRACTITIONERS, _PRACTITIONERS.c.id == _SESSIONS.c.practitioner_id)
    .where(_SESSIONS.c.id == bindparam("session_id"))
)


def session_with_practitioner(db: Session, session_id: str) -> Row[Any] | None:
    """The session and its practitioner, as one row (session_id, session_authz_version,
    expires_at, revoked_at, user_id, username, status, user_authz_version, role, role_pending,
    organisation_id, local_authority_id)."""
    return db.connection().execute(_SESSION_WITH_PRACTITIONER, {"session_id": session_id}).first()


def accept_totp_step(db: Session, practitioner_id: int, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was: one code, one login."""
    result = db.execute(
        update(Practitioner)
        .where(
            Practitioner.id == practitioner_id,
            (Practitioner.totp_last_step.is_(None)) | (Practitioner.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def change_status(db: Session, user: Practitioner, status: AccountStatus) -> bool:
    """Move ``user`` to ``status`` from the status read, making older tokens stale; False if
    another change came first."""
    return advance(
        db,
        user,
        Practitioner.status == user.status,
        status=status.value,
        authz_version=Practitioner.authz_version + 1,
    )


def confirm_role(db: Session, user: Practitioner, by: int, at: datetime) -> bool:
    """Confirm ``user``'s pending role; False if another data manager confirmed it first (or
    the role was changed meanwhile)."""
    return advance(
        db,
        user,
        Practitioner.role_pending.is_(True),
        Practitioner.role == user.role,
        role_pending=False,
        role_confirmed_by=by,
        role_granted_at=at,
    )


def revoke_sessions(db: Session, practitioner_id: int, now: datetime) -> None:
    db.execute(
        update(LoginSession)
        .where(LoginSession.practitioner_id == practitioner_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_other_sessions(db: Session, practitioner_id: int, keep: str, now: datetime) -> None:
    db.execute(
        update(LoginSession)
        .where(
            LoginSession.practitioner_id == practitioner_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.id != keep,
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def throttle(db: Session, key: str) -> LoginThrottle | None:
    return db.get(LoginThrottle, key, populate_existing=True)


def count_failure(db: Session, key: str, now: datetime, window_start: datetime) -> int:
    """Add a failure to ``key``'s window (a new window once the old one ended); return the count."""
    dialect = db.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_fn(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    expired = LoginThrottle.window_started_at < window_start
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((expired, now), else_=LoginThrottle.window_started_at),
        },
    )
    db.execute(stmt)
    row = throttle(db, key)
    return row.failures if row else 1


def lock(db: Session, key: str, until: datetime) -> None:
    db.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(locked_until=until))


def clear_throttle(db: Session, key: str) -> None:
    db.execute(
        update(LoginThrottle).where(LoginThrottle.key == key).values(failures=0, locked_until=None)
    )


def established_colleagues(
    db: Session, *, organisation_id: int, local_authority_id: int, created_before: datetime
) -> tuple[int, int]:
    """Active accounts created before ``created_before`` in the organisation and in the LA."""
    in_org = case((Practitioner.organisation_id == organisation_id, 1), else_=0)
    in_la = case((Practitioner.local_authority_id == local_authority_id, 1), else_=0)
    org, la = db.execute(
        select(func.coalesce(func.sum(in_org), 0), func.coalesce(func.sum(in_la), 0)).where(
            or_(
                Practitioner.organisation_id == organisation_id,
                Practitioner.local_authority_id == local_authority_id,
            ),
            Practitioner.status == AccountStatus.ACTIVE,
            Practitioner.created_at < created_before,
        )
    ).one()
    return int(org), int(la)
