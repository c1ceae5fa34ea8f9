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
    CANARY_ALERTS = "canary_alerts"


def enabled(settings: Settings, control: Control) -> bool:
    """Whether ``control`` is on (it is, unless a development build switched it off)."""
    return control not in settings.disabled_controls
