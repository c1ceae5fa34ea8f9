"""The registry's notion of now, replaceable in tests."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Wall clock in UTC; tests substitute a subclass with a controlled time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def minute_window(now: datetime) -> tuple[int, int]:
    """The current minute's number (since the epoch) and the seconds left in it: a fixed
    window for per-minute counts."""
    epoch = int(now.timestamp())
    return epoch // 60, 60 - epoch % 60


def start_of_day(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC day.

    For a record's own created and updated times: the audit event of a change (a shield, say)
    carries the exact moment, so an exact time in the row would let a copy of the database
    match the event to the child even with the event's child reference sealed. A day is all
    the registry needs of them.
    """
    day = moment.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def age_on(date_of_birth: str, today: datetime) -> int:
    """Return the age in whole years on ``today`` for an ISO date of birth."""
    year, month, day = (int(part) for part in date_of_birth.split("-"))
    return today.year - year - ((today.month, today.day) < (month, day))
