"""What makes the population provably fictional: reserved ranges, and a validator that checks them.

The registry's own fictional rows (export watermarks) obey the same rules, so they live here and
the generator (`synthetic_data`) imports them.

Each rule is a small registered function with a one-line docstring; `validate_row` runs every
rule that applies to a row's fields, and the tests run it on every row of a generated sample.

- Phone numbers come only from the ranges Ofcom reserves for drama ("Telephone numbers for
  drama purposes"): 07700 900000-900999 for mobiles, the 1,000-number blocks below for
  landlines. No such number can ring anyone.
- Emails use only the second-level domains RFC 2606 reserves for documentation:
  example.com, example.org and example.net.
- Postcodes use areas beginning with Q. Royal Mail never uses Q, V or X as the first letter of a
  postcode area, so a "Q" postcode cannot be a real address, yet it has the shape search needs.
- Child identifiers carry a valid check character (the registry's own Luhn mod 32).
- NHS-style numbers, where present, come from the 999 000 0000-999 999 9999 test range with a
  valid modulus 11 check digit. The registry holds no NHS numbers, so the generator writes none:
  the test range holds fewer than a million valid numbers, too few to give 11 million children
  one each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reference_app.kit import identifiers

DRAMA_MOBILE_PREFIX = "07700 900"
# (printed prefix, first, last): each block is prefix + a number in [first, last].
DRAMA_LANDLINE_BLOCKS: tuple[tuple[str, int, int], ...] = (
    ("0113 496 ", 0, 999),
    ("0114 496 ", 0, 999),
    ("0115 496 ", 0, 999),
    ("0116 496 ", 0, 999),
    ("0117 496 ", 0, 999),
    ("0118 496 ", 0, 999),
    ("0121 496 ", 0, 999),
    ("0131 496 ", 0, 999),
    ("0141 496 ", 0, 999),
    ("0151 496 ", 0, 999),
    ("0161 496 ", 0, 999),
    ("020 7946 ", 0, 999),
    ("0191 498 ", 0, 999),
    ("028 9649 ", 6000, 6999),
    ("029 2018 ", 0, 999),
    ("01632 960", 0, 999),
)
RESERVED_EMAIL_DOMAINS = frozenset({"example.com", "example.org", "example.net"})
FICTIONAL_POSTCODE_AREA_LETTER = "Q"

_POSTCODE = re.compile(r"Q[A-Z]\d{1,2} \d[ABD-HJLNP-UW-Z]{2}")
_LANDLINE_DIGITS = 4


def drama_mobile(n: int) -> str:
    """The n-th number (0-999) of Ofcom's drama mobile range."""
    return f"{DRAMA_MOBILE_PREFIX}{n % 1000:03d}"


def drama_landline(n: int) -> str:
    """The n-th number of Ofcom's drama landline blocks, cycling through all of them."""
    prefix, first, last = DRAMA_LANDLINE_BLOCKS[n % len(DRAMA_LANDLINE_BLOCKS)]
    number = first + (n // len(DRAMA_LANDLINE_BLOCKS)) % (last - first + 1)
    digits = 3 if prefix.endswith("960") else _LANDLINE_DIGITS
    return f"{prefix}{number:0{digits}d}"


def is_drama_number(phone: str) -> bool:
    """Whether ``phone`` lies in a range Ofcom reserves for drama."""
    if phone.startswith(DRAMA_MOBILE_PREFIX):
        tail = phone[len(DRAMA_MOBILE_PREFIX) :]
        return len(tail) == 3 and tail.isdigit()
    for prefix, first, last in DRAMA_LANDLINE_BLOCKS:
        if phone.startswith(prefix):
            tail = phone[len(prefix) :]
            digits = 3 if prefix.endswith("960") else _LANDLINE_DIGITS
            return len(tail) == digits and tail.isdigit() and first <= int(tail) <= last
    return False


def is_reserved_email(email: str) -> bool:
    """Whether ``email`` is on a domain RFC 2606 reserves for examples."""
    local, at, domain = email.rpartition("@")
    return bool(at and local) and domain.lower() in RESERVED_EMAIL_DOMAINS


def is_fictional_postcode(postcode: str) -> bool:
    """Whether ``postcode`` is well formed and in an area Royal Mail never uses (Q...)."""
    return _POSTCODE.fullmatch(postcode) is not None


def nhs_check_digit(nine_digits: str) -> int | None:
    """The NHS number modulus 11 check digit, or None where the first nine digits have none."""
    total = sum(int(d) * w for d, w in zip(nine_digits, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return 0 if check == 11 else None if check == 10 else check


def is_test_nhs_number(number: str) -> bool:
    """Whether ``number`` is a valid NHS-style number in the 999 test range."""
    digits = number.replace(" ", "")
    if len(digits) != 10 or not digits.isdigit() or not digits.startswith("999"):
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


@dataclass(frozen=True)
class Rule:
    """One fictional-data rule: the field it applies to and the check."""

    name: str
    field: str
    check: Callable[[str], bool]
    statement: str


RULES: list[Rule] = []


def rule(name: str, field: str) -> Callable[[Callable[[str], bool]], Callable[[str], bool]]:
    """Register ``check`` as the rule for every non-empty value of ``field``."""

    def register(check: Callable[[str], bool]) -> Callable[[str], bool]:
        RULES.append(Rule(name, field, check, (check.__doc__ or name).strip()))
        return check

    return register


rule("phone_in_drama_range", "phone")(is_drama_number)
rule("email_on_reserved_domain", "email")(is_reserved_email)
rule("postcode_in_unused_area", "postcode")(is_fictional_postcode)
rule("child_id_check_character", "child_id")(identifiers.is_valid)
rule("nhs_number_in_test_range", "nhs_number")(is_test_nhs_number)


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str
    value: str


def validate_row(row: Mapping[str, Any]) -> list[Violation]:
    """Return every rule a row breaks (rules whose field the row lacks or leaves empty pass)."""
    found: list[Violation] = []
    for r in RULES:
        value = row.get(r.field)
        if value is None or value == "":
            continue
        if not r.check(str(value)):
            found.append(Violation(r.name, r.field, str(value)))
    return found


def validate_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[int, list[Violation]]:
    """Validate many rows; return how many were checked and every violation found."""
    count = 0
    found: list[Violation] = []
    for row in rows:
        count += 1
        found.extend(validate_row(row))
    return count, found
