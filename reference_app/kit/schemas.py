"""Field types shared by the request schemas: dates only as ISO 8601 text, and date bounds.

pydantic's lax date parsing reads a JSON number as seconds since 1970 (``0`` is 1 January 1970)
and accepts a datetime string for a date. A client that sends a number has made a mistake the
registry must not guess at, so a date arrives as ``YYYY-MM-DD`` text or is refused (422,
``invalid_request``). Bounds that depend on today or on the record (a birth not in the future,
an involvement not before the child was born) are checked by the services against the
instance's clock with ``within``; they answer 422 ``date_out_of_range``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from reference_app.kit.errors import InvalidInput

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATE = re.compile(DATE_PATTERN)
DATE_OUT_OF_RANGE = "date_out_of_range"


def iso_date(value: Any) -> Any:
    """Accept a date, or text of the form ``YYYY-MM-DD`` naming a real day; refuse the rest."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise PydanticCustomError("date_type", "a date is text of the form YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_from_text", "no such day in the calendar") from None


IsoDate = Annotated[
    dt.date,
    BeforeValidator(iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]


def years_before(day: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` earlier (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def within(
    value: dt.date | None,
    field: str,
    *,
    earliest: tuple[dt.date, str] | None = None,
    latest: tuple[dt.date, str] | None = None,
) -> None:
    """Refuse ``value`` (named ``field``) before ``earliest`` or after ``latest``; each bound
    comes with what it is, for the message (a date is never echoed: it may be personal data)."""
    if value is None:
        return
    if earliest is not None and value < earliest[0]:
        raise InvalidInput(f"{field} may not be before {earliest[1]}.", code=DATE_OUT_OF_RANGE)
    if latest is not None and value > latest[0]:
        raise InvalidInput(f"{field} may not be after {latest[1]}.", code=DATE_OUT_OF_RANGE)
