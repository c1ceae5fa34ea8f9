"""Catalogue of the 152 English children's services authorities (2010-2019), loaded from CSV."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

REGIONS: tuple[str, ...] = (
    "North East",
    "North West",
    "Yorkshire and The Humber",
    "East Midlands",
    "West Midlands",
    "East of England",
    "London",
    "South East",
    "South West",
)

HEADER: tuple[str, ...] = ("ons_code", "name", "region", "children_0_17")

# E06 unitary, E08 metropolitan district, E09 London borough, E10 county.
_CODE_PATTERN = re.compile(r"E(06|08|09|10)\d{6}")
_DATA_PACKAGE = "reference_app.localauthorities"
_DATA_DIR = "data"
_DATA_FILE = "local_authorities.csv"


@dataclass(frozen=True, slots=True)
class LocalAuthorityInfo:
    """One upper-tier authority: GSS code, name, ONS region and approximate 0-17 population."""

    ons_code: str
    name: str
    region: str
    children_0_17: int


def _parse_row(line_no: int, row: list[str]) -> LocalAuthorityInfo:
    where = f"line {line_no}: {row!r}"
    if len(row) != len(HEADER):
        raise ValueError(f"{where}: expected {len(HEADER)} fields, got {len(row)}")
    code, name, region, children = (field.strip() for field in row)
    if not _CODE_PATTERN.fullmatch(code):
        raise ValueError(f"{where}: bad ons_code {code!r}")
    if not name:
        raise ValueError(f"{where}: empty name")
    if region not in REGIONS:
        raise ValueError(f"{where}: unknown region {region!r}")
    try:
        count = int(children)
    except ValueError:
        raise ValueError(f"{where}: children_0_17 is not an integer: {children!r}") from None
    if count <= 0:
        raise ValueError(f"{where}: children_0_17 must be positive, got {count}")
    return LocalAuthorityInfo(ons_code=code, name=name, region=region, children_0_17=count)


def parse_rows(lines: Iterable[str]) -> tuple[LocalAuthorityInfo, ...]:
    """Parse CSV text lines (header first), validating every row; sorted by ons_code.

    Raises ValueError naming the offending line for a bad header, a malformed row or a
    duplicate code.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(field.strip() for field in header) != HEADER:
        raise ValueError(f"line 1: expected header {','.join(HEADER)}, got {header!r}")
    seen: set[str] = set()
    parsed: list[LocalAuthorityInfo] = []
    for row in reader:
        if not row:
            continue
        info = _parse_row(reader.line_num, row)
        if info.ons_code in seen:
            raise ValueError(f"line {reader.line_num}: {row!r}: duplicate ons_code")
        seen.add(info.ons_code)
        parsed.append(info)
    return tuple(sorted(parsed, key=lambda info: info.ons_code))


@functools.cache
def load_catalogue() -> tuple[LocalAuthorityInfo, ...]:
    """Return the packaged catalogue, validated and sorted by ons_code (read once, cached)."""
    source = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR).joinpath(_DATA_FILE)
    return parse_rows(io.StringIO(source.read_text(encoding="utf-8"), newline=""))


def by_code() -> dict[str, LocalAuthorityInfo]:
    """Return a fresh mapping from ons_code to its catalogue entry."""
    return {info.ons_code: info for info in load_catalogue()}
