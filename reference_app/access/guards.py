"""Route guards: authenticate the bearer token against its session, then check permissions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from reference_app.access.permissions import ROLE_PERMISSIONS, Permission, Role
from reference_app.access.principal import Principal
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Forbidden, Unauthorized
from reference_app.kit.http import CallDep
from reference_app.kit.sources import check_source
from reference_app.practitioners import repository, tokens
from reference_app.practitioners.models import AccountStatus


def authenticate(request: Request, call: CallDep) -> Principal:
    """Resolve the caller from ``Authorization: Bearer``; every check hits the session store.

    The request counts against its source's allowance first (``api.source_limit`` leaves that
    to this thread on the routes that authenticate)."""
    check_source(call.ctx, call.info.source)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    claims = tokens.decode(call.ctx, token.strip())
    found = repository.session_with_practitioner(call.db, str(claims["sid"]))
    now = call.ctx.clock.now()
    if found is None:
        raise Unauthorized("The session is not valid.", code="invalid_session")
    if str(found.user_id) != str(claims["sub"]):
        raise Unauthorized("The session is not valid.", code="invalid_session")
    # Switched off (development only): revoked, stale and suspended users' sessions still work,
    # and without token checks an expired session does too, as its token would.
    revocation = enabled(call.ctx.settings, Control.SESSION_REVOCATION)
    expiry = enabled(call.ctx.settings, Control.TOKEN_CHECKS)
    # Suspension is named even though it also revoked the session: the holder is told why.
    if revocation and found.status != AccountStatus.ACTIVE:
        raise Forbidden("This account is suspended.", code="account_suspended")
    if (revocation and found.revoked_at is not None) or (expiry and found.expires_at <= now):
        raise Unauthorized("The session has ended; log in again.", code="session_ended")
    if revocation and found.session_authz_version != found.user_authz_version:
        raise Unauthorized("Your access has changed; log in again.", code="session_ended")
    role = Role(found.role)
    principal = Principal(
        user_id=found.user_id,
        username=found.username,
        role=role,
        organisation_id=found.organisation_id,
        local_authority_id=found.local_authority_id,
        session_id=found.session_id,
        # A role awaiting a data manager's confirmation holds nothing yet.
        permissions=frozenset() if found.role_pending else ROLE_PERMISSIONS[role],
        role_pending=found.role_pending,
    )
    request.state.principal = principal
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


def require(*permissions: Permission) -> Callable[..., Awaitable[Principal]]:
    """Build a dependency that admits callers holding every one of ``permissions``."""

    async def guard(principal: Authenticated, call: CallDep) -> Principal:
        # No I/O: run on the event loop, not in a worker thread.
        missing = [p for p in permissions if not principal.can(p)]
        if missing and enabled(call.ctx.settings, Control.FUNCTION_AUTHORIZATION):
            raise Forbidden(
                f"Your role does not allow this ({', '.join(missing)}).", code="permission_denied"
            )
        return principal

    return guard
