"""Helpers two or three scenario groups share (no scenarios here).

A person's pause between requests and what a session answers now; a data manager's unshield
request; child identifiers with their
check character; unpadded base64url token segments; and exports: the recipient's key pair, the
request, and the file opened with the recipient's key.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import httpx
from pyrage import x25519

from reference_app.kit.agefile import MAGIC, AgeFileError, open_sealed
from security_tests.context import Caller, refusal
from security_tests.engine import Finding, expect

# Crockford's base 32 (as reference_app.kit.identifiers): no I, L, O or U.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# -- pace and sessions ---------------------------------------------------------------------------


def pause() -> None:
    """Wait a person's moment (20-120 ms), so requests are not spaced as evenly as a machine's."""
    time.sleep((20 + secrets.randbelow(100)) / 1000)


def session_state(caller: Caller) -> tuple[int, str | None]:
    """What the caller's session answers now (GET /auth/me): status and error code."""
    return refusal(caller.get("/auth/me"))


# -- child identifiers ---------------------------------------------------------------------------


def ask_unshield(caller: Caller, child_id: str, note: str) -> float:
    """``caller`` (a data manager) asks to lift the child's shield; the moment the answer came
    back (``time.monotonic()``), for the alert it raises."""
    asked = caller.post(
        f"/children/{child_id}/shield", json={"shielded": False, "decision_note": note}
    )
    since = time.monotonic()
    expect(asked.status_code in (200, 202), f"the unshield request answered {asked.status_code}")
    return since


def check_character(payload: str) -> str:
    """Luhn mod 32 over Crockford's alphabet, as the registry computes it."""
    n = len(CROCKFORD)
    total, factor = 0, 2
    for ch in reversed(payload):
        addend = factor * CROCKFORD.index(ch)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return CROCKFORD[(n - total % n) % n]


def random_identifier() -> str:
    """A well-formed identifier (valid check character) that almost surely names nobody."""
    payload = "".join(secrets.choice(CROCKFORD) for _ in range(12))
    return payload + check_character(payload)


# -- token segments ------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Encode as one unpadded base64url segment."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Decode one unpadded base64url segment (binascii.Error when it is not one)."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def encode_segment(value: dict[str, Any]) -> str:
    """A JSON object as a compact token segment."""
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def decode_segment(segment: str) -> Any:
    """The JSON a token segment holds (ValueError when it holds none)."""
    return json.loads(b64url_decode(segment))


def altered(signature: str) -> str:
    """``signature`` with one character changed: a middle one, as the last may be padding bits."""
    i = len(signature) // 2
    swapped = "A" if signature[i] != "A" else "B"
    return f"{signature[:i]}{swapped}{signature[i + 1 :]}"


# -- exports -------------------------------------------------------------------------------------


def recipient() -> tuple[x25519.Identity, str]:
    """A fresh age recipient key pair: the identity and the public key (``age1...``)."""
    key = x25519.Identity.generate()
    return key, str(key.to_public())


def request_export(
    requester: Caller,
    scope: dict[str, Any],
    public_pem: str,
    justification: str,
    recipient_name: str = "Harness recipient",
) -> httpx.Response:
    """Ask for an export of ``scope`` sealed to ``public_pem``; return the answer as it is."""
    return requester.post(
        "/exports",
        json={
            "scope": scope,
            "justification": justification,
            "recipient_name": recipient_name,
            "recipient_public_key": public_pem,
        },
    )


def export_rows(blob: bytes, key: x25519.Identity) -> list[dict[str, Any]]:
    """The export file's rows: opened with the recipient key, or read as is when not sealed."""
    # The sealed format is age (age-encryption.org/v1); the recipient opens it with any age tool.
    if blob.startswith(MAGIC):
        try:
            blob = open_sealed(blob, [key])
        except AgeFileError as exc:
            raise Finding(f"the recipient key cannot open the export: {exc}") from exc
    return [json.loads(line) for line in blob.decode("utf-8").splitlines() if line.strip()]
