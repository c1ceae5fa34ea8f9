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
    ADMIN_SEPARATION = "admin_separation"  # no self re-role; child-data roles need LA confirming
    ALERT_SEPARATION = "alert_separation"  # nobody handles an alert about themselves
    APPROVER_INDEPENDENCE = "approver_independence"  # approvers: old accounts, not the requester's
    AUDIT_TRAIL = "audit_trail"  # every record view and search goes on the trail
    AUTO_SUSPEND = "auto_suspend"  # a hard threshold suspends the account at once
    CANARY_ALERTS = "canary_alerts"  # any view of a honeytoken child alerts
    CLAIM_CONFIRMATION = "claim_confirmation"  # a claimed involvement waits for the LA; alerts
    CONSENT_WITHDRAWAL = "consent_withdrawal"  # withdrawn or ended involvements hidden from others
    CREDENTIAL_CUSTODY = "credential_custody"  # users enrol their own password and TOTP
    EXPORT_ENCRYPTION = "export_encryption"  # exports are encrypted to the recipient's key
    EXPORT_LINK_CHECKS = "export_link_checks"  # download link: signature, expiry, requester
    EXPORT_SIZE_CAP = "export_size_cap"  # an export's scope is capped in rows
    EXPORT_TWO_PERSON = "export_two_person"  # the requester can never approve
    EXPORT_WATERMARK = "export_watermark"  # per-recipient canary rows in every export
    FUNCTION_AUTHORIZATION = "function_authorization"  # each route admits only its roles
    HARVESTING_DETECTION = "harvesting_detection"  # sweeps, enumeration, machine timing
    LOCKOUT_PER_SOURCE = "lockout_per_source"  # an account's lock-out binds only the failing source
    LOGIN_LOCKOUT = "login_lockout"  # repeated login failures lock the account and the source
    NEED_TO_KNOW = "need_to_know"  # limited view without involvement; archived records hidden
    OTP_SINGLE_USE = "otp_single_use"  # a one-time code's time step is accepted once
    OVERRIDE_ALERTS = "override_alerts"  # break-glass use alerts at once
    RATE_LIMITS = "rate_limits"  # per-user and per-source rates and daily quotas
    REFUSAL_AUDIT = "refusal_audit"  # 400/404/409/422/429 refusals go on the trail too
    REQUEST_LIMITS = "request_limits"  # request body size and JSON depth
    RESULT_QUOTAS = "result_quotas"  # search results count; organisation and LA daily caps
    SECURITY_HEADERS = "security_headers"  # nosniff, no framing, CSP, no-store on every answer
    SESSION_REVOCATION = "session_revocation"  # logout, suspension, role change end a token
    SHIELDING = "shielding"  # shielded address and contacts withheld, unfindable by postcode
    SNOOPING_DETECTION = "snooping_detection"  # insider-browsing rules and score
    SUSPENSION_AUTHORITY = "suspension_authority"  # reinstate: employing LA, open alert, 2 people
    TEXT_HYGIENE = "text_hygiene"  # no control or bidi characters in free text fields
    TOKEN_CHECKS = "token_checks"  # signature, algorithm, audience, issuer, expiry  # noqa: S105
    TRUSTED_PROXIES = "trusted_proxies"  # forwarded headers believed only from listed proxies
    UNIFORM_REFUSALS = "uniform_refusals"  # refusals reveal nothing: not yours answers as missing
    UNSHIELD_TWO_PERSON = "unshield_two_person"  # a second data manager approves an unshield


def enabled(settings: Settings, control: Control) -> bool:
    """Whether ``control`` is on (it is, unless a development build switched it off)."""
    return control not in settings.disabled_controls
