"""Download links: short-lived tokens naming one export, its requester and an expiry.

A token is ``base64url(claims) "." base64url(HMAC-SHA256(key, first part))`` under a subkey of
the instance keyring kept for this purpose alone. It holds no personal data (an export id, a user
id, a time), and it is not enough on its own: the download also needs the requester's session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from reference_app.kit.keys import Keyring

PURPOSE = "export-link"
MAX_TOKEN = 400


class LinkError(ValueError):
    """The text is not a download link token."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    export_id: int
    user_id: int
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LinkError("not base64url") from exc


def _mac(keyring: Keyring, body: str) -> bytes:
    return hmac.new(keyring.subkey(PURPOSE), body.encode("ascii"), hashlib.sha256).digest()


def issue(keyring: Keyring, *, export_id: int, user_id: int, expires_at: datetime) -> str:
    claims = {
        "e": export_id,
        "u": user_id,
        "x": int(expires_at.timestamp()),
        "n": secrets.token_hex(8),
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode("ascii"))
    return f"{body}.{_b64(_mac(keyring, body))}"


def read(token: str) -> LinkClaims:
    """Parse a token's claims without trusting them (``signed`` says whether to)."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise LinkError("malformed link")
    body = token.split(".")[0]
    try:
        claims = json.loads(_unb64(body))
        return LinkClaims(
            export_id=int(claims["e"]),
            user_id=int(claims["u"]),
            expires_at=datetime.fromtimestamp(int(claims["x"]), UTC),
        )
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise LinkError("malformed link") from exc


def signed(keyring: Keyring, token: str) -> bool:
    """Whether the token carries this instance's signature over its claims."""
    body, _, signature = token.partition(".")
    try:
        given = _unb64(signature)
    except LinkError:
        return False
    return hmac.compare_digest(given, _mac(keyring, body))
