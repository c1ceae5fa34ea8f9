"""The registry's notion of now, replaceable in tests."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Wall clock in UTC; tests substitute a subclass with a controlled time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def age_on(date_of_birth: str, today: datetime) -> int:
    """Return the age in whole years on ``today`` for an ISO date of birth."""
    year, month, day = (int(part) for part in date_of_birth.split("-"))
    return today.year - year - ((today.month, today.day) < (month, day))
