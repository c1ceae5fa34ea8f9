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
    AUTO_SUSPEND = "auto_suspend"  # a hard threshold suspends the account at once
    CANARY_ALERTS = "canary_alerts"  # any view of a honeytoken child alerts
    EXPORT_ENCRYPTION = "export_encryption"  # exports are encrypted to the recipient's key
    EXPORT_LINK_CHECKS = "export_link_checks"  # download link: signature, expiry, requester
    EXPORT_SIZE_CAP = "export_size_cap"  # an export's scope is capped in rows
    EXPORT_TWO_PERSON = "export_two_person"  # the requester can never approve
    EXPORT_WATERMARK = "export_watermark"  # per-recipient canary rows in every export
    HARVESTING_DETECTION = "harvesting_detection"  # sweeps, enumeration, machine timing
    OVERRIDE_ALERTS = "override_alerts"  # break-glass use alerts at once
    RATE_LIMITS = "rate_limits"  # per-user and per-source rates and daily quotas
    REQUEST_LIMITS = "request_limits"  # request body size and JSON depth
    SNOOPING_DETECTION = "snooping_detection"  # insider-browsing rules and score


def enabled(settings: Settings, control: Control) -> bool:
    """Whether ``control`` is on (it is, unless a development build switched it off)."""
    return control not in settings.disabled_controls
