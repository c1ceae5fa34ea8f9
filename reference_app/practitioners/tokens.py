"""Short-lived signed access tokens, each naming a server-side session."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt

from reference_app.context import AppContext
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import Unauthorized

# Pinned: a token naming any other algorithm, including "none", is refused.
ALGORITHM = "HS256"


def issue(ctx: AppContext, *, practitioner_id: int, session_id: str, now: datetime) -> str:
    settings = ctx.settings
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": str(practitioner_id),
        "sid": session_id,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.token_ttl_seconds)).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, ctx.keyring.token_secret, algorithm=ALGORITHM)


def decode(ctx: AppContext, token: str) -> dict[str, Any]:
    """Return the claims of a valid token, or raise Unauthorized."""
    if not enabled(ctx.settings, Control.TOKEN_CHECKS):
        return _unchecked(token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            ctx.keyring.token_secret,
            algorithms=[ALGORITHM],
            audience=ctx.settings.token_audience,
            issuer=ctx.settings.token_issuer,
            # Times are judged below by the instance's clock, which tests control.
            options={
                "require": ["exp", "iat", "sub", "sid", "aud", "iss"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("The access token is not valid.", code="invalid_token") from exc
    now = ctx.clock.now().timestamp()
    try:
        expires, not_before = float(claims["exp"]), float(claims.get("nbf", claims["iat"]))
    except (TypeError, ValueError) as exc:
        raise Unauthorized("The access token is not valid.", code="invalid_token") from exc
    if now >= expires:
        raise Unauthorized("The access token has expired.", code="token_expired")
    if now + 5 < not_before:
        raise Unauthorized("The access token is not valid yet.", code="invalid_token")
    return claims


def _unchecked(token: str) -> dict[str, Any]:
    """Read the claims trusting the token as sent: any signature or algorithm (``none`` too),
    audience, issuer and expiry (``token_checks`` off, development only). The session named
    is still looked up."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            options={
                "verify_signature": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["sub", "sid"],
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("The access token is not valid.", code="invalid_token") from exc
    return claims
