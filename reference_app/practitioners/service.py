"""Login with password and one-time code, lock-outs, sessions, and account administration."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from argon2.exceptions import VerificationError
from sqlalchemy.orm import Session

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.audit.tags import EventTag, Outcome
from reference_app.config import Settings
from reference_app.context import AppContext
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from reference_app.kit.http import Call
from reference_app.practitioners import repository, tokens
from reference_app.practitioners.models import AccountStatus, LoginSession, Practitioner
from reference_app.practitioners.schemas import LocalAuthorityRef, Me
from reference_app.services.models import Organisation

TOTP_STEP_SECONDS = 30

# The password hash of an account that cannot log in with a password (bulk-loaded accounts).
NO_PASSWORD = "!no-password"  # noqa: S105 (a marker no Argon2 hash can equal)


@dataclass(frozen=True)
class LoginResult:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class NewAccount:
    practitioner: Practitioner
    password: str
    totp_secret: str


def _matching_step(secret: str, otp: str, now: datetime) -> int | None:
    """Return the time step whose code equals ``otp``, allowing one step of clock drift."""
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)
    current = int(now.timestamp()) // TOTP_STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_SECONDS), otp):
            return step
    return None


def _locked_for(call: Call, key: str, now: datetime) -> int | None:
    row = repository.throttle(call.db, key)
    if row and row.locked_until and row.locked_until > now:
        return int((row.locked_until - now).total_seconds()) + 1
    return None


@dataclass(frozen=True)
class _Throttle:
    """A failure count and what reaching its limit does: lock for a fixed time, or back off."""

    key: str
    limit: int
    backoff: bool = False


def _lock_seconds(settings: Settings, throttle: _Throttle, failures: int) -> int:
    """How long reaching the limit locks the key: a fixed lock-out, or for an (account, source)
    pair a back-off that doubles with each failure past the limit, capped at the lock-out."""
    if not throttle.backoff:
        return settings.login_lockout_seconds
    doublings = min(failures - throttle.limit, 16)
    backoff: int = settings.login_backoff_seconds << doublings
    return min(settings.login_lockout_seconds, backoff)


def _fail(call: Call, throttles: list[_Throttle], now: datetime, *, lockout: bool) -> None:
    settings = call.ctx.settings
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    for throttle in throttles:
        failures = repository.count_failure(call.db, throttle.key, now, window_start)
        if failures >= throttle.limit and lockout:
            until = now + timedelta(seconds=_lock_seconds(settings, throttle, failures))
            repository.lock(call.db, throttle.key, until)


def _throttles(call: Call, username: str) -> list[_Throttle]:
    """The failure counts a login attempt is held to.

    Per (account, source) with a back-off, and per source: someone who knows a username can
    lock it out only for their own address, never for the practitioner at theirs. Switched off
    (``lockout_per_source``, development only), the account is locked whatever the source.
    """
    ctx = call.ctx
    account = ctx.crypto.index.username(username).hex()
    source = call.info.source or "unknown"
    by_source = _Throttle(f"source:{source}", ctx.settings.login_max_failures_source)
    if not enabled(ctx.settings, Control.LOCKOUT_PER_SOURCE):
        return [_Throttle(f"account:{account}", ctx.settings.login_max_failures_account), by_source]
    # Hashed: the key column is short, and a source address need not be readable beside it.
    pair = hashlib.blake2b(f"{account}|{source}".encode(), digest_size=20).hexdigest()
    return [
        _Throttle(f"pair:{pair}", ctx.settings.login_max_failures_account, backoff=True),
        by_source,
    ]


def _audit_failure(
    call: Call, user: Practitioner | None, outcome: Outcome, details: dict[str, str]
) -> None:
    call.audit(
        EventTag.AUTH_LOGIN_FAILED,
        outcome=outcome,
        actor_id=user.id if user else None,
        details=details,
    )


def login(call: Call, username: str, password: str, otp: str) -> LoginResult:
    """Authenticate with password and TOTP; every failure looks and costs the same.

    Failures are counted per account name and source (existing or not, so lock-out reveals
    nothing) and per source address. The caller commits even when this raises, so counts are
    kept.
    """
    ctx = call.ctx
    now = ctx.clock.now()
    throttles = _throttles(call, username)
    user = repository.by_username(call.db, username.strip())
    # Switched off (development only), failures are still counted and audited but never lock.
    lockout = enabled(ctx.settings, Control.LOGIN_LOCKOUT)
    locked = max((_locked_for(call, t.key, now) or 0) for t in throttles) if lockout else 0
    password_ok = _verify_password(ctx, user.password_hash if user else None, password)
    step = None
    if user is not None:
        secret = ctx.crypto.cipher.decrypt(user.totp_secret_enc, "practitioners.totp_secret")
        step = _matching_step(secret, otp, now)
    if locked:
        _audit_failure(call, user, Outcome.DENIED, {"cause": "locked_out"})
        raise TooManyRequests(
            "Too many failed attempts; try again later.",
            code="too_many_attempts",
            retry_after=locked,
        )
    single_use = enabled(ctx.settings, Control.OTP_SINGLE_USE)
    ok = (
        user is not None
        and password_ok
        and step is not None
        and (not single_use or repository.accept_totp_step(call.db, user.id, step))
    )
    uniform = enabled(ctx.settings, Control.UNIFORM_REFUSALS)
    if ok and user is not None and user.status != AccountStatus.ACTIVE and uniform:
        # The right password of a suspended account answers (and counts) as a wrong one: the
        # answer must not confirm the password to whoever holds it. The trail says why.
        _fail(call, throttles, now, lockout=lockout)
        _audit_failure(call, user, Outcome.DENIED, {"cause": "account_suspended"})
        raise _invalid_credentials()
    if not ok or user is None:
        _fail(call, throttles, now, lockout=lockout)
        _audit_failure(
            call, user, Outcome.FAILED, {"username_hmac": ctx.crypto.index.username(username).hex()}
        )
        raise _invalid_credentials()
    if user.status != AccountStatus.ACTIVE:
        _audit_failure(call, user, Outcome.DENIED, {"cause": "account_suspended"})
        raise Forbidden("This account is suspended.", code="account_suspended")
    for throttle in throttles[:-1]:  # a success clears the account's count, not the source's
        repository.clear_throttle(call.db, throttle.key)
    session = LoginSession(
        id=secrets.token_urlsafe(32),
        practitioner_id=user.id,
        authz_version=user.authz_version,
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.token_ttl_seconds),
        source=call.info.source,
    )
    call.db.add(session)
    call.db.flush()
    call.audit(
        EventTag.AUTH_LOGIN_SUCCEEDED,
        actor_id=user.id,
        details={"session": session.id[:8]},
    )
    token = tokens.issue(ctx, practitioner_id=user.id, session_id=session.id, now=now)
    return LoginResult(access_token=token, expires_in=ctx.settings.token_ttl_seconds)


def _invalid_credentials() -> Unauthorized:
    return Unauthorized(
        "The username, password or code is not correct.", code="invalid_credentials"
    )


def _verify_password(ctx: AppContext, stored: str | None, password: str) -> bool:
    # An account with no password (bulk-loaded, or never set) costs the same dummy verification
    # as an unknown user, so timing tells neither apart from a wrong password.
    target = stored if stored is not None and stored != NO_PASSWORD else None
    try:
        return ctx.password_hasher.verify(target or ctx.dummy_password_hash, password) and (
            target is not None
        )
    except VerificationError:
        return False


def whoami(call: Call, principal: Principal) -> Me:
    """The caller's account, role, organisation and local authority."""
    la = repository.local_authority(call.db, principal.local_authority_id)
    return Me(
        id=principal.user_id,
        username=principal.username,
        role=principal.role,
        organisation_id=principal.organisation_id,
        local_authority_id=principal.local_authority_id,
        local_authority=LocalAuthorityRef(code=la.ons_code, name=la.name) if la else None,
    )


def logout(call: Call, principal: Principal) -> None:
    now = call.ctx.clock.now()
    session = call.db.get(LoginSession, principal.session_id)
    if session is not None and session.revoked_at is None:
        session.revoked_at = now
    call.audit(EventTag.AUTH_LOGOUT, principal=principal)


def create_account(
    ctx: AppContext,
    db: Session,
    *,
    username: str,
    display_name: str,
    role: Role,
    organisation: Organisation,
    email: str | None = None,
    password: str | None = None,
    totp_secret: str | None = None,
    home_postcode: str | None = None,
) -> NewAccount:
    """Create a practitioner with a fresh password and TOTP secret (returned once, never stored).

    The display name's last word is taken as the family name; its blind index, and the home
    postcode's when given, let insider-browsing detection spot a look at a relative's child.
    """
    if repository.by_username(db, username) is not None:
        raise Conflict(f"The username {username!r} is taken.", code="username_taken")
    password = password or secrets.token_urlsafe(18)
    totp_secret = totp_secret or pyotp.random_base32()
    cipher = ctx.crypto.cipher
    practitioner = Practitioner(
        username=username,
        display_name_enc=cipher.encrypt(display_name, "practitioners.display_name"),
        email_enc=cipher.encrypt(email, "practitioners.email") if email else None,
        role=role.value,
        organisation_id=organisation.id,
        local_authority_id=organisation.local_authority_id,
        password_hash=ctx.password_hasher.hash(password),
        totp_secret_enc=cipher.encrypt(totp_secret, "practitioners.totp_secret"),
        status=AccountStatus.ACTIVE.value,
        authz_version=1,
        created_at=ctx.clock.now(),
        family_name_bidx=ctx.crypto.index.name(display_name.rsplit(" ", 1)[-1]),
        home_postcode_bidx=ctx.crypto.index.postcode(home_postcode) if home_postcode else None,
    )
    db.add(practitioner)
    db.flush()
    return NewAccount(practitioner=practitioner, password=password, totp_secret=totp_secret)


def register_account(
    call: Call,
    principal: Principal,
    *,
    username: str,
    display_name: str,
    role: Role,
    organisation_id: int,
    email: str | None,
) -> NewAccount:
    organisation = call.db.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound("No such organisation.", code="organisation_not_found")
    account = create_account(
        call.ctx,
        call.db,
        username=username,
        display_name=display_name,
        role=role,
        organisation=organisation,
        email=email,
    )
    call.audit(
        EventTag.USER_CREATED,
        principal=principal,
        details={"practitioner_id": account.practitioner.id, "role": role.value},
    )
    return account


def change_account(
    call: Call,
    principal: Principal,
    practitioner_id: int,
    *,
    role: Role | None,
    status: AccountStatus | None,
) -> Practitioner:
    """Change a role or suspend/reinstate; either ends the account's sessions at once."""
    user = repository.by_id(call.db, practitioner_id)
    if user is None:
        raise NotFound("No such practitioner.", code="practitioner_not_found")
    if role is not None and role.value != user.role:
        call.audit(
            EventTag.USER_ROLE_CHANGED,
            principal=principal,
            details={"practitioner_id": user.id, "from": user.role, "to": role.value},
        )
        user.role = role.value
        user.authz_version += 1
    if status is not None:
        set_status(call, user, status, by=principal)
    call.db.flush()
    return user


def set_status(
    call: Call,
    user: Practitioner,
    status: AccountStatus,
    *,
    by: Principal | None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Suspend or reinstate ``user`` (by a person, or by a detector when ``by`` is None).

    Suspension ends every session at once; either change makes older tokens stale. Returns
    whether anything changed.
    """
    now = call.ctx.clock.now()
    if status is AccountStatus.SUSPENDED:
        repository.revoke_sessions(call.db, user.id, now)
    if status.value == user.status:
        return False
    tag = EventTag.USER_SUSPENDED if status is AccountStatus.SUSPENDED else EventTag.USER_REINSTATED
    call.audit(
        tag,
        principal=by,
        details={"practitioner_id": user.id, **(details or {})},
    )
    user.status = status.value
    user.authz_version += 1
    call.db.flush()
    return True
