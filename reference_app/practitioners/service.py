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

from reference_app.access.permissions import CHILD_DATA_ROLES, Role
from reference_app.access.principal import Principal
from reference_app.alerts.models import AlertKind, AlertSeverity
from reference_app.alerts.service import raise_alert
from reference_app.audit.tags import EventTag, Outcome
from reference_app.config import Settings
from reference_app.context import AppContext
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from reference_app.kit.http import Call
from reference_app.kit.transitions import StateChanged
from reference_app.practitioners import repository, tokens
from reference_app.practitioners.models import AccountStatus, LoginSession, Practitioner
from reference_app.practitioners.schemas import LocalAuthorityRef, Me
from reference_app.services.models import Organisation

TOTP_STEP_SECONDS = 30

# The password hash of an account that cannot log in with a password (bulk-loaded accounts).
NO_PASSWORD = "!no-password"  # noqa: S105 (a marker no Argon2 hash can equal)
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "ContactPoint"


@dataclass(frozen=True)
class LoginResult:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class NewAccount:
    practitioner: Practitioner
    password: str
    totp_secret: str


@dataclass(frozen=True)
class Registered:
    """An account made through the API: an enrolment code, or (custody off) its credentials."""

    practitioner: Practitioner
    enrolment_code: str | None
    enrolment_expires_at: datetime | None
    password: str | None
    totp_secret: str | None


@dataclass(frozen=True)
class NewSecret:
    """A TOTP secret shown once to its own user, with the URI an authenticator app reads."""

    totp_secret: str
    otpauth_uri: str


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


def _watch_guessing(call: Call, user: Practitioner | None, username: str, now: datetime) -> None:
    """Count the account's failures from every source; at the threshold, alert its LA's team.

    The count never locks (that would let anyone lock a practitioner out): a guesser spread over
    many addresses, each kept under the per-source limits, is made visible instead. One alert a
    window: the count restarts with the window.
    """
    settings = call.ctx.settings
    account = call.ctx.crypto.index.username(username).hex()
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    failures = repository.count_failure(call.db, f"guess:{account}", now, window_start)
    if user is None or failures != settings.login_guessing_alert_failures:
        return
    raise_alert(
        call,
        user.id,
        kind=AlertKind.CREDENTIAL_GUESSING,
        severity=AlertSeverity.HIGH,
        local_authority_id=user.local_authority_id,
        child_id=None,
        audit_event_id=None,
        summary=f"{failures} failed logins to this account within "
        f"{settings.login_window_seconds // 60} minutes",
        details={"failures": failures, "window_seconds": settings.login_window_seconds},
    )


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
    stored = user.password_hash if user else None
    step = None
    if user is not None:
        secret = ctx.crypto.cipher.decrypt(user.totp_secret_enc, "practitioners.totp_secret")
        step = _matching_step(secret, otp, now)
    user_id = user.id if user is not None else None
    _end_reads(call)
    password_ok = _verify_password(ctx, stored, password)
    # What is written below is written in a new transaction, against the account as it is now.
    user = repository.by_id(call.db, user_id) if user_id is not None else None
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
        _watch_guessing(call, user, username, now)
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


def _end_reads(call: Call) -> None:
    """End the login's reading transaction before the password is hashed.

    Argon2id costs a few hundred milliseconds by design. Held open across it, the transaction
    would keep its database connection from the pool and, on SQLite, the database's one write
    lock (transactions begin IMMEDIATE there), so every other request of the instance would wait
    for each login. Nothing has been written yet, so ending it loses nothing.
    """
    assert not call.db.new, "a login added rows before hashing"
    assert not call.db.dirty, "a login changed rows before hashing"
    assert not call.db.deleted, "a login deleted rows before hashing"
    call.db.rollback()


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
        role_pending=principal.role_pending,
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
    created_at: datetime | None = None,
) -> NewAccount:
    """Create a practitioner with a fresh password and TOTP secret (returned once, never stored).

    For the command line, bulk loads and tests: established staff (``created_at`` may backdate
    them), active and enrolled. Accounts made over the API go through ``register_account``.

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
        created_at=created_at or ctx.clock.now(),
        family_name_bidx=ctx.crypto.index.name(display_name.rsplit(" ", 1)[-1]),
        home_postcode_bidx=ctx.crypto.index.postcode(home_postcode) if home_postcode else None,
    )
    db.add(practitioner)
    db.flush()
    return NewAccount(practitioner=practitioner, password=password, totp_secret=totp_secret)


def _needs_confirmation(principal: Principal, role: Role, local_authority_id: int) -> bool:
    """Whether giving ``role`` waits for a data manager of the account's local authority."""
    grantor_is_la_manager = (
        principal.is_data_manager
        and not principal.role_pending
        and principal.local_authority_id == local_authority_id
    )
    return role in CHILD_DATA_ROLES and not grantor_is_la_manager


def _code_hash(code: str) -> str:
    # The code is 192 random bits: a plain hash is enough, nobody can search its space.
    return hashlib.sha256(code.encode()).hexdigest()


def register_account(
    call: Call,
    principal: Principal,
    *,
    username: str,
    display_name: str,
    role: Role,
    organisation_id: int,
    email: str | None,
) -> Registered:
    """Create an account for someone else.

    Under credential custody the creator gets only a one-time enrolment code: the user sets
    their own password and receives their own TOTP secret, so no administrator can act as them.
    A child-data role given by anyone but a data manager of the account's LA waits for one.
    """
    organisation = call.db.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound("No such organisation.", code="organisation_not_found")
    ctx = call.ctx
    now = ctx.clock.now()
    account = create_account(
        ctx,
        call.db,
        username=username,
        display_name=display_name,
        role=role,
        organisation=organisation,
        email=email,
    )
    user = account.practitioner
    user.created_by = principal.user_id
    user.role_granted_by = principal.user_id
    user.role_granted_at = now
    user.role_pending = enabled(ctx.settings, Control.ADMIN_SEPARATION) and _needs_confirmation(
        principal, role, user.local_authority_id
    )
    code: str | None = None
    expires: datetime | None = None
    if enabled(ctx.settings, Control.CREDENTIAL_CUSTODY):
        code = secrets.token_urlsafe(24)
        expires = now + timedelta(hours=ctx.settings.enrolment_code_ttl_hours)
        # The generated credentials are thrown away unseen: the user enrols their own.
        user.password_hash = NO_PASSWORD
        user.totp_secret_enc = ctx.crypto.cipher.encrypt(
            pyotp.random_base32(), "practitioners.totp_secret"
        )
        user.enrolment_code_hash = _code_hash(code)
        user.enrolment_expires_at = expires
    call.db.flush()
    call.audit(
        EventTag.USER_CREATED,
        principal=principal,
        details={
            "practitioner_id": user.id,
            "role": role.value,
            "role_pending": user.role_pending,
            "enrolment": code is not None,
        },
    )
    if code is not None:
        return Registered(user, code, expires, None, None)
    return Registered(user, None, None, account.password, account.totp_secret)


def _own_account(call: Call, principal: Principal, user: Practitioner) -> None:
    if user.id == principal.user_id and enabled(call.ctx.settings, Control.ADMIN_SEPARATION):
        raise Forbidden(
            "Nobody changes their own role or status; ask another administrator.",
            code="own_account_change",
        )


def change_account(
    call: Call,
    principal: Principal,
    practitioner_id: int,
    *,
    role: Role | None,
    status: AccountStatus | None,
) -> Practitioner:
    """Change a role or suspend/reinstate; either ends the account's sessions at once.

    Nobody changes their own account, and a child-data role given by anyone but a data manager
    of the account's LA holds no permission until one confirms it.
    """
    user = repository.by_id(call.db, practitioner_id)
    if user is None:
        raise NotFound("No such practitioner.", code="practitioner_not_found")
    if role is not None or status is not None:
        _own_account(call, principal, user)
    if role is not None and role.value != user.role:
        pending = enabled(call.ctx.settings, Control.ADMIN_SEPARATION) and _needs_confirmation(
            principal, role, user.local_authority_id
        )
        call.audit(
            EventTag.USER_ROLE_CHANGED,
            principal=principal,
            details={
                "practitioner_id": user.id,
                "from": user.role,
                "to": role.value,
                "role_pending": pending,
            },
        )
        user.role = role.value
        user.role_pending = pending
        user.role_granted_by = principal.user_id
        user.role_confirmed_by = None
        user.role_granted_at = call.ctx.clock.now()
        user.authz_version += 1
    if status is not None:
        set_status(call, user, status, by=principal)
    call.db.flush()
    return user


def confirm_role(call: Call, principal: Principal, practitioner_id: int) -> Practitioner:
    """A data manager of the account's LA confirms a role someone else gave it."""
    user = repository.by_id(call.db, practitioner_id)
    # Another LA's account is "not found": a data manager learns nothing of other LAs' staff.
    if user is None or user.local_authority_id != principal.local_authority_id:
        raise NotFound("No such practitioner.", code="practitioner_not_found")
    if user.id == principal.user_id:
        raise Forbidden(
            "Nobody confirms their own role; ask another data manager.",
            code="own_account_change",
        )
    if not user.role_pending:
        raise Conflict("This account's role is not awaiting confirmation.", code="role_not_pending")
    # The role takes effect now: an export approver's role must be older than the setting.
    if not repository.confirm_role(call.db, user, principal.user_id, call.ctx.clock.now()):
        raise StateChanged("The account's role was confirmed or changed by someone else.")
    call.audit(
        EventTag.USER_ROLE_CONFIRMED,
        principal=principal,
        details={"practitioner_id": user.id, "role": user.role},
    )
    call.db.flush()
    return user


def check_password_policy(username: str, password: str) -> None:
    """Refuse a password too short, containing the username, or one repeated character."""
    weak = (
        len(password) < MIN_PASSWORD_LENGTH
        or username.lower() in password.lower()
        or len(set(password)) < 4
    )
    if weak:
        raise InvalidInput(
            f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters, not containing "
            "your username, with at least four different characters.",
            code="weak_password",
        )


def _new_secret(call: Call, user: Practitioner) -> NewSecret:
    secret = pyotp.random_base32()
    user.totp_secret_enc = call.ctx.crypto.cipher.encrypt(secret, "practitioners.totp_secret")
    user.totp_last_step = None
    uri = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=user.username, issuer_name=TOTP_ISSUER
    )
    return NewSecret(totp_secret=secret, otpauth_uri=uri)


def _throttle_keys(call: Call, kind: str, username: str) -> list[_Throttle]:
    """The failure count an enrolment or re-authentication is held to.

    Per account only: an enrolment code or a logged-in user's password is not what credential
    stuffing from one source guesses at, and the login's per-source budget stays the login's.
    Like the login's, the count is per (account, source) with a back-off, so nobody locks a
    practitioner out from another address.
    """
    ctx = call.ctx
    account = ctx.crypto.index.username(username).hex()
    if not enabled(ctx.settings, Control.LOCKOUT_PER_SOURCE):
        return [_Throttle(f"{kind}:{account}", ctx.settings.login_max_failures_account)]
    source = call.info.source or "unknown"
    pair = hashlib.blake2b(f"{account}|{source}".encode(), digest_size=20).hexdigest()
    return [_Throttle(f"{kind}:{pair}", ctx.settings.login_max_failures_account, backoff=True)]


def _refuse_if_locked(call: Call, throttles: list[_Throttle], now: datetime) -> None:
    if not enabled(call.ctx.settings, Control.LOGIN_LOCKOUT):
        return
    locked = max((_locked_for(call, throttle.key, now) or 0) for throttle in throttles)
    if locked:
        raise TooManyRequests(
            "Too many failed attempts; try again later.",
            code="too_many_attempts",
            retry_after=locked,
        )


def enrol(call: Call, username: str, code: str, password: str) -> NewSecret:
    """Set a new account's password with its enrolment code; return its new TOTP secret.

    Every failure (unknown user, wrong, used or expired code) answers alike, so the endpoint
    tells nobody which accounts exist or await enrolment; failures count toward lock-out.
    """
    ctx = call.ctx
    now = ctx.clock.now()
    username = username.strip()
    check_password_policy(username, password)
    keys = _throttle_keys(call, "enrol", username)
    _refuse_if_locked(call, keys, now)
    user = repository.by_username(call.db, username)
    offered = _code_hash(code)
    stored = user.enrolment_code_hash if user is not None else None
    matches = hmac.compare_digest(offered, stored or "0" * 64) and stored is not None
    live = (
        user is not None
        and user.enrolment_expires_at is not None
        and user.enrolment_expires_at > now
    )
    if user is None or not matches or not live:
        _fail(call, keys, now, lockout=enabled(ctx.settings, Control.LOGIN_LOCKOUT))
        call.audit(
            EventTag.AUTH_ENROL_FAILED,
            outcome=Outcome.FAILED,
            actor_id=user.id if user else None,
            details={"username_hmac": ctx.crypto.index.username(username).hex()},
        )
        raise Unauthorized(
            "The username or enrolment code is not correct, or the code has expired.",
            code="invalid_enrolment",
        )
    user.password_hash = ctx.password_hasher.hash(password)
    user.enrolment_code_hash = None
    user.enrolment_expires_at = None
    secret = _new_secret(call, user)
    call.db.flush()
    call.audit(EventTag.AUTH_ENROLLED, actor_id=user.id, details={"practitioner_id": user.id})
    return secret


def _reauthenticate(call: Call, principal: Principal, password: str, otp: str) -> Practitioner:
    """The caller's own account, if ``password`` and a fresh one-time code are right."""
    ctx = call.ctx
    now = ctx.clock.now()
    keys = _throttle_keys(call, "account", principal.username)
    _refuse_if_locked(call, keys, now)
    user = repository.by_id(call.db, principal.user_id)
    if user is None:
        raise Unauthorized("The session is not valid.", code="invalid_session")
    password_ok = _verify_password(ctx, user.password_hash, password)
    secret = ctx.crypto.cipher.decrypt(user.totp_secret_enc, "practitioners.totp_secret")
    step = _matching_step(secret, otp, now)
    single_use = enabled(ctx.settings, Control.OTP_SINGLE_USE)
    ok = (
        password_ok
        and step is not None
        and (not single_use or repository.accept_totp_step(call.db, user.id, step))
    )
    if not ok:
        _fail(call, keys, now, lockout=enabled(ctx.settings, Control.LOGIN_LOCKOUT))
        _audit_failure(call, user, Outcome.FAILED, {"cause": "reauthentication"})
        raise Unauthorized("The password or code is not correct.", code="invalid_credentials")
    call.db.refresh(user)
    return user


def change_password(
    call: Call, principal: Principal, current_password: str, otp: str, new_password: str
) -> None:
    """The caller changes their own password; their other sessions end."""
    check_password_policy(principal.username, new_password)
    user = _reauthenticate(call, principal, current_password, otp)
    user.password_hash = call.ctx.password_hasher.hash(new_password)
    repository.revoke_other_sessions(call.db, user.id, principal.session_id, call.ctx.clock.now())
    call.audit(EventTag.AUTH_PASSWORD_CHANGED, principal=principal)
    call.db.flush()


def reset_totp(call: Call, principal: Principal, password: str, otp: str) -> NewSecret:
    """The caller replaces their own TOTP secret; their other sessions end."""
    user = _reauthenticate(call, principal, password, otp)
    secret = _new_secret(call, user)
    repository.revoke_other_sessions(call.db, user.id, principal.session_id, call.ctx.clock.now())
    call.audit(EventTag.AUTH_TOTP_RESET, principal=principal)
    call.db.flush()
    return secret


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
    whether anything changed: the account moves only from the status read, so of two changes
    at once one is made (and audited) and the other returns False.
    """
    now = call.ctx.clock.now()
    if status is AccountStatus.SUSPENDED:
        repository.revoke_sessions(call.db, user.id, now)
    if status.value == user.status or not repository.change_status(call.db, user, status):
        return False
    tag = EventTag.USER_SUSPENDED if status is AccountStatus.SUSPENDED else EventTag.USER_REINSTATED
    call.audit(
        tag,
        principal=by,
        details={"practitioner_id": user.id, **(details or {})},
    )
    return True
