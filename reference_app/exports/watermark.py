"""Watermark rows: fictional children unique to one export, so a leaked copy names its source.

Each export gets ``WATERMARK_ROWS`` children made by a keyed PRF (HMAC-SHA256 under a subkey of
the instance's keyring) over the export id, so nobody without the key can predict them or tell
them apart, and the same export always yields the same rows. They are fictional by the
project's rules (``reference_app.kit.fictional``): their postcodes lie in a "Q" area, which Royal
Mail never uses. In form they match the real rows around them: a first name from the birth
cohort's popular names, a surname, town and postcode district borrowed from real rows of the
same scope (the district only where that row's postcode is fictional too, as in every
synthetic population), a date of birth inside the scope's age range. They are registered as
children of the LA with a ``canaries`` row, so anyone who later looks one up raises a
``canary_access`` alert, and the export file is ordered by child id, which puts them at
pseudo-random positions among the real rows.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from reference_app.kit import identifiers
from reference_app.kit.fictional import is_fictional_postcode
from reference_app.kit.names import (
    BRITISH_STREET_SUFFIXES,
    COHORT_FIRST_NAMES,
    EXTRA_SURNAMES,
    words,
)

WATERMARK_ROWS = 3
NEIGHBOURS = 8  # real rows of the scope a watermark may borrow a surname and place from
PRF_PURPOSE = "export-watermark"
_POPULAR = 60  # first names drawn from each cohort's most popular
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # Royal Mail never uses C, I, K, M, O or V inward
_AREA_LETTERS = string.ascii_uppercase
_GENDERS = ("female", "male")
_SUFFIXES = tuple(sorted(BRITISH_STREET_SUFFIXES))
# Used only when the scope has no real rows to borrow from.
_FALLBACK_SURNAMES = tuple(sorted(EXTRA_SURNAMES))
_EDGE_DAYS = 3  # keep clear of the age range's ends, so the row still fits a day later


@dataclass(frozen=True, slots=True)
class Neighbour:
    """What a watermark row may borrow from one real row of its scope."""

    family_name: str
    town: str
    postcode: str


@dataclass(frozen=True, slots=True)
class WatermarkChild:
    child_id: str
    given_name: str
    family_name: str
    date_of_birth: str
    gender: str
    address: dict[str, Any]


class Prf:
    """Pseudo-random choices for one export: repeatable, and only with the instance's key."""

    def __init__(self, key: bytes, export_id: int) -> None:
        self._key = key
        self._export = str(export_id).encode("ascii")

    def digest(self, *labels: object) -> bytes:
        message = b"|".join([self._export, *(str(label).encode("utf-8") for label in labels)])
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def below(self, bound: int, *labels: object) -> int:
        """A number in ``[0, bound)``; 256 bits make the modulo bias negligible."""
        return int.from_bytes(self.digest(*labels), "big") % bound

    def pick(self, options: Sequence[Any], *labels: object) -> Any:
        return options[self.below(len(options), *labels)]


def _first_names(year: int, gender: str) -> list[str]:
    cohorts = sorted(COHORT_FIRST_NAMES)
    chosen = cohorts[0]
    for start, end in cohorts:
        if start <= year:
            chosen = (start, end)
    return words(COHORT_FIRST_NAMES[chosen][gender])[:_POPULAR]


def _postcode(prf: Prf, i: int, neighbour: Neighbour | None) -> str:
    if neighbour is not None and is_fictional_postcode(neighbour.postcode):
        outward = neighbour.postcode.split(" ")[0]
    else:
        area = prf.pick(_AREA_LETTERS, i, "area")
        outward = f"Q{area}{1 + prf.below(96, i, 'district')}"
    inward = (
        f"{prf.below(10, i, 'sector')}"
        f"{prf.pick(_INWARD_LETTERS, i, 'unit1')}{prf.pick(_INWARD_LETTERS, i, 'unit2')}"
    )
    return f"{outward} {inward}"


def generate(
    key: bytes,
    export_id: int,
    *,
    birth_dates: Sequence[date],
    neighbours: Sequence[Neighbour],
    fallback_town: str,
    taken: Callable[[str], bool],
) -> list[WatermarkChild]:
    """The watermark children of export ``export_id``.

    ``birth_dates`` are the dates of birth the scope admits (ascending), ``neighbours`` real
    rows of the scope to borrow surnames and places from, ``taken`` says whether a child id is
    already in use.
    """
    prf = Prf(key, export_id)
    inner = birth_dates[_EDGE_DAYS:-_EDGE_DAYS] if len(birth_dates) > 4 * _EDGE_DAYS else None
    dates = inner or birth_dates
    rows: list[WatermarkChild] = []
    for i in range(WATERMARK_ROWS):
        gender = prf.pick(_GENDERS, i, "gender")
        born: date = prf.pick(dates, i, "dob")
        place = prf.pick(neighbours, i, "place") if neighbours else None
        surnames = [n.family_name for n in neighbours] or list(_FALLBACK_SURNAMES)
        family = prf.pick(surnames, i, "family")
        street_name = prf.pick(surnames, i, "street")
        attempt = 0
        child_id = identifiers.from_random_bytes(prf.digest(i, "id", attempt))
        while taken(child_id) or any(r.child_id == child_id for r in rows):
            attempt += 1
            child_id = identifiers.from_random_bytes(prf.digest(i, "id", attempt))
        postcode = _postcode(prf, i, place)
        assert is_fictional_postcode(postcode), postcode
        rows.append(
            WatermarkChild(
                child_id=child_id,
                given_name=prf.pick(_first_names(born.year, gender), i, "given"),
                family_name=family,
                date_of_birth=born.isoformat(),
                gender=gender,
                address={
                    "line1": f"{1 + prf.below(150, i, 'house')} {street_name} "
                    f"{prf.pick(_SUFFIXES, i, 'suffix')}",
                    "line2": None,
                    "town": place.town if place else fallback_town,
                    "postcode": postcode,
                },
            )
        )
    return rows


def neighbour_offsets(key: bytes, export_id: int, population: int) -> list[int]:
    """Positions (in the scope's id order) of the real rows an export's watermarks borrow from."""
    if population <= 0:
        return []
    prf = Prf(key, export_id)
    return sorted({prf.below(population, "neighbour", k) for k in range(NEIGHBOURS)})
