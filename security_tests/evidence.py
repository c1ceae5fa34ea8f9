"""Evidence: the requests and responses a scenario made, with secrets and personal data redacted.

An assessor hands the evidence to critics, so it must not become a leak itself: credentials,
tokens, one-time codes and every personal field (names, dates of birth, addresses, contacts,
notes) are replaced by ``<redacted>`` wherever they appear in a JSON body, long opaque path
segments (download links) are cut, and bodies are capped in size.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

REDACTED = "<redacted>"
REDACT_KEYS = frozenset(
    {
        "address",
        "date_of_birth",
        "decision_note",
        "display_name",
        "email",
        "enrolment_code",
        "family_name",
        "given_name",
        "justification",
        "line1",
        "line2",
        "link",
        "name",
        "note",
        "otp",
        "phone",
        "postcode",
        "reason_text",
        "recipient_public_key",
        "telephone",
        "town",
        "url",
    }
)
SHOWN_HEADERS = frozenset(
    {
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "cache-control",
        "content-security-policy",
        "content-type",
        "location",
        "referrer-policy",
        "retry-after",
        "strict-transport-security",
        "x-access-reason",
        "x-content-type-options",
        "x-frame-options",
        "origin",
    }
)
# Besides REDACT_KEYS, a key naming any of these is a credential whatever the rest of its name
# (password, access_token, totp_secret, otpauth_uri, refresh_token ...); a value that is an
# authenticator URI holds the TOTP secret.
SECRET_WORDS = ("password", "secret", "token", "otpauth")
BODY_LIMIT = 1500
KEEP_FIRST, KEEP_LAST = 8, 16
_OPAQUE = re.compile(r"/[A-Za-z0-9_\-.~%]{40,}")


def _sensitive(key: str) -> bool:
    key = key.lower()
    return key in REDACT_KEYS or any(word in key for word in SECRET_WORDS)


def redact(value: Any) -> Any:
    """``value`` with every sensitive key's value replaced, recursively."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _sensitive(str(k)) and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and value.lower().startswith("otpauth:"):
        return REDACTED
    return value


def _body(content: bytes, content_type: str) -> Any:
    if not content:
        return None
    if "json" in content_type:
        try:
            return redact(json.loads(content))
        except ValueError:
            pass
    if content_type.startswith("text/html"):
        return f"<{len(content)} bytes of HTML>"
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(content)} bytes of binary>"
    return text[:200] + (" ..." if len(text) > 200 else "") if text.isprintable() else "<text>"


def _capped(body: Any) -> Any:
    text = json.dumps(body, default=str)
    if len(text) <= BODY_LIMIT:
        return body
    return text[:BODY_LIMIT] + f" ... <{len(text) - BODY_LIMIT} more characters>"


def _headers(headers: httpx.Headers) -> dict[str, str]:
    shown = {k.lower(): v for k, v in headers.items() if k.lower() in SHOWN_HEADERS}
    if "authorization" in headers:
        scheme = headers["authorization"].split(" ", 1)[0]
        shown["authorization"] = f"{scheme} {REDACTED}"
    return shown


def _path(url: httpx.URL) -> str:
    path = _OPAQUE.sub("/" + REDACTED, url.path)
    query = "?" + url.query.decode() if url.query else ""
    return path + query


class Evidence:
    """The exchanges and notes of one scenario run."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self.count = 0
        self.notes: list[str] = []

    def record(self, response: httpx.Response, seconds: float | None = None) -> None:
        request = response.request
        self.count += 1
        entry = {
            "n": self.count,
            "request": {
                "method": request.method,
                "path": _path(request.url),
                "headers": _headers(request.headers),
                "body": _capped(_body(request.content, request.headers.get("content-type", ""))),
            },
            "response": {
                "status": response.status_code,
                "headers": _headers(response.headers),
                "body": _capped(_body(response.content, response.headers.get("content-type", ""))),
            },
        }
        if seconds is not None:
            entry["ms"] = round(seconds * 1000, 1)
        self.exchanges.append(entry)
        # Keep the first and the last exchanges of a long scenario (a harvesting run).
        if len(self.exchanges) > KEEP_FIRST + KEEP_LAST:
            del self.exchanges[KEEP_FIRST]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def dump(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"note": n} for n in self.notes]
        if self.count > len(self.exchanges):
            out.append(
                {
                    "note": f"{self.count} requests made; the first {KEEP_FIRST} and last "
                    f"{len(self.exchanges) - KEEP_FIRST} are shown"
                }
            )
        return out + self.exchanges


class Stopwatch:
    """Time an exchange from request to response (httpx hooks see only one side each)."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}

    def start(self, request: httpx.Request) -> None:
        self.started[id(request)] = time.perf_counter()

    def stop(self, request: httpx.Request) -> float | None:
        began = self.started.pop(id(request), None)
        return None if began is None else time.perf_counter() - began
