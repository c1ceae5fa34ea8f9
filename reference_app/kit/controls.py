"""Abuse and data-loss controls a development build may switch off.

The security harness proves that it notices a missing control by running against a weakened
build: `CONTACTPOINT_DISABLED_CONTROLS='["canary_alerts"]'` with
`CONTACTPOINT_ENVIRONMENT=development`. Settings refuse a switched-off control in any other
environment, so a production instance always runs with every control on.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reference_app.config import Settings


class Control(StrEnum):
    AUDIT_TRAIL = "audit_trail"  # every record view and search goes on the trail
    AUTO_SUSPEND = "auto_suspend"  # a hard threshold suspends the account at once
    CANARY_ALERTS = "canary_alerts"  # any view of a honeytoken child alerts
    CLAIM_CONFIRMATION = "claim_confirmation"  # a claimed involvement waits for the LA; alerts
    EXPORT_ENCRYPTION = "export_encryption"  # exports are encrypted to the recipient's key
    EXPORT_LINK_CHECKS = "export_link_checks"  # download link: signature, expiry, requester
    EXPORT_SIZE_CAP = "export_size_cap"  # an export's scope is capped in rows
    EXPORT_TWO_PERSON = "export_two_person"  # the requester can never approve
    EXPORT_WATERMARK = "export_watermark"  # per-recipient canary rows in every export
    FUNCTION_AUTHORIZATION = "function_authorization"  # each route admits only its roles
    HARVESTING_DETECTION = "harvesting_detection"  # sweeps, enumeration, machine timing
    LOGIN_LOCKOUT = "login_lockout"  # repeated login failures lock the account and the source
    NEED_TO_KNOW = "need_to_know"  # limited view without involvement; archived records hidden
    OTP_SINGLE_USE = "otp_single_use"  # a one-time code's time step is accepted once
    OVERRIDE_ALERTS = "override_alerts"  # break-glass use alerts at once
    RATE_LIMITS = "rate_limits"  # per-user and per-source rates and daily quotas
    REQUEST_LIMITS = "request_limits"  # request body size and JSON depth
    SECURITY_HEADERS = "security_headers"  # nosniff, no framing, CSP, no-store on every answer
    SESSION_REVOCATION = "session_revocation"  # logout, suspension, role change end a token
    SHIELDING = "shielding"  # shielded address and contacts withheld, unfindable by postcode
    SNOOPING_DETECTION = "snooping_detection"  # insider-browsing rules and score
    TOKEN_CHECKS = "token_checks"  # signature, algorithm, audience, issuer, expiry  # noqa: S105


def enabled(settings: Settings, control: Control) -> bool:
    """Whether ``control`` is on (it is, unless a development build switched it off)."""
    return control not in settings.disabled_controls
