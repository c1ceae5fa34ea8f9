"""Child identifiers: random, unguessable, with a Luhn mod 32 check character."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from annotated_types import Ge, Le

# Crockford's base 32: no I, L, O or U, so the id survives being read aloud or retyped.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
PAYLOAD_LENGTH = 12  # 60 random bits: guessing a valid id among 11 million is ~1 in 10**11
LENGTH = PAYLOAD_LENGTH + 1
# An identifier in its canonical form, as the API answers it (the check character is not a
# pattern: a well-formed id that fails it is refused, 422 ``invalid_child_id``).
CHILD_ID_PATTERN = f"^[{ALPHABET}]{{{LENGTH}}}$"
CANONICAL = re.compile(CHILD_ID_PATTERN)


class InvalidIdentifier(ValueError):
    """The text is not a well-formed child identifier."""


def check_character(payload: str) -> str:
    """Return the Luhn mod N check character for ``payload`` (catches any single-character slip)."""
    n = len(ALPHABET)
    total = 0
    factor = 2
    for ch in reversed(payload):
        addend = factor * _VALUE[ch]
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def from_random_bytes(raw: bytes) -> str:
    """Build an identifier from at least 8 random bytes (generators pass seeded bytes)."""
    if len(raw) < 8:
        raise ValueError("need at least 8 random bytes")
    number = int.from_bytes(raw[:8], "big") >> 4  # 60 bits
    payload = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(PAYLOAD_LENGTH)))
    return payload + check_character(payload)


def new_child_id() -> str:
    """Return a fresh random child identifier."""
    return from_random_bytes(secrets.token_bytes(8))


def normalise(text: str) -> str:
    """Return the canonical form of a typed identifier, or raise InvalidIdentifier."""
    cleaned = text.strip().upper().replace("-", "").replace(" ", "").translate(_ALIASES)
    if len(cleaned) != LENGTH or any(ch not in _VALUE for ch in cleaned):
        raise InvalidIdentifier("a child identifier is 13 characters of Crockford base 32")
    if check_character(cleaned[:-1]) != cleaned[-1]:
        raise InvalidIdentifier("the check character does not match: the identifier is mistyped")
    return cleaned


def is_valid(text: str) -> bool:
    """Tell whether ``text`` is a well-formed identifier with a correct check character."""
    try:
        normalise(text)
    except InvalidIdentifier:
        return False
    return True


# A row identifier as every table can hold it (PostgreSQL's `integer` keys are signed 32-bit):
# anything beyond is a clean 422, never an overflow inside the database driver (a 500).
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Ge(1), Le(MAX_ROW_ID)]
# The audit trail's events are numbered in a signed 64-bit column: it outgrows 32 bits nationally.
MAX_EVENT_ID = 2**63 - 1
EventId = Annotated[int, Ge(1), Le(MAX_EVENT_ID)]
