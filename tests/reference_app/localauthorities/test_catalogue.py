"""Tests for the packaged catalogue of English children's services authorities."""

from __future__ import annotations

from collections import Counter

import pytest

from reference_app.localauthorities.catalogue import (
    REGIONS,
    LocalAuthorityInfo,
    by_code,
    load_catalogue,
    parse_rows,
)

HEADER = "ons_code,name,region,children_0_17"
GOOD_ROW = "E06000001,Hartlepool,North East,20500"

# Authorities per region in the 2009-2019 settlement (152 in all).
EXPECTED_REGION_COUNTS = {
    "North East": 12,
    "North West": 23,
    "Yorkshire and The Humber": 15,
    "East Midlands": 9,
    "West Midlands": 14,
    "East of England": 11,
    "London": 33,
    "South East": 19,
    "South West": 16,
}


def test_regions_are_the_nine_in_ons_order() -> None:
    assert len(REGIONS) == 9
    assert REGIONS[0] == "North East"
    assert REGIONS[-1] == "South West"
    assert set(REGIONS) == set(EXPECTED_REGION_COUNTS)


def test_exactly_152_authorities() -> None:
    assert len(load_catalogue()) == 152


def test_codes_and_names_are_unique() -> None:
    catalogue = load_catalogue()
    assert len({la.ons_code for la in catalogue}) == len(catalogue)
    assert len({la.name for la in catalogue}) == len(catalogue)


def test_sorted_by_code_and_cached() -> None:
    catalogue = load_catalogue()
    codes = [la.ons_code for la in catalogue]
    assert codes == sorted(codes)
    assert load_catalogue() is catalogue


def test_every_region_present_with_expected_counts() -> None:
    counts = Counter(la.region for la in load_catalogue())
    assert dict(counts) == EXPECTED_REGION_COUNTS


def test_code_prefixes_match_authority_types() -> None:
    prefixes = Counter(la.ons_code[:3] for la in load_catalogue())
    assert prefixes["E09"] == 33  # 32 London boroughs and the City of London
    assert prefixes["E08"] == 36  # metropolitan districts
    assert prefixes["E10"] == 27  # two-tier county councils
    assert prefixes["E06"] == 152 - 33 - 36 - 27  # unitaries, Isles of Scilly included
    assert set(prefixes) == {"E06", "E08", "E09", "E10"}


def test_all_london_codes_are_in_london() -> None:
    for la in load_catalogue():
        assert (la.region == "London") == la.ons_code.startswith("E09"), la


def test_pre_2019_authorities_are_separate() -> None:
    codes = by_code()
    for code, name in {
        "E06000028": "Bournemouth",
        "E06000029": "Poole",
        "E10000009": "Dorset",
        "E10000021": "Northamptonshire",
        "E10000006": "Cumbria",
        "E06000053": "Isles of Scilly",
        "E09000001": "City of London",
    }.items():
        assert codes[code].name == name


def test_total_children_is_plausible() -> None:
    total = sum(la.children_0_17 for la in load_catalogue())
    assert 10_500_000 <= total <= 12_500_000


def test_populations_are_positive_and_rounded_to_hundreds() -> None:
    for la in load_catalogue():
        assert la.children_0_17 > 0, la
        assert la.children_0_17 % 100 == 0, la


def test_by_code_covers_catalogue() -> None:
    mapping = by_code()
    assert len(mapping) == 152
    assert mapping["E08000025"].name == "Birmingham"


def test_parse_rows_accepts_good_rows_and_sorts() -> None:
    rows = parse_rows(
        [
            HEADER,
            "E09000001,City of London,London,900",
            GOOD_ROW,
            '"E06000010","Hull, City of","Yorkshire and The Humber",57000',
        ]
    )
    assert [la.ons_code for la in rows] == ["E06000001", "E06000010", "E09000001"]
    assert rows[0] == LocalAuthorityInfo("E06000001", "Hartlepool", "North East", 20500)
    assert rows[1].name == "Hull, City of"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("X06000001,Hartlepool,North East,20500", "bad ons_code"),
        ("E07000001,Some District,North East,20500", "bad ons_code"),
        ("E0600001,Hartlepool,North East,20500", "bad ons_code"),
        ("E06000001,Hartlepool,North-East,20500", "unknown region"),
        ("E06000001,Hartlepool,North East,0", "must be positive"),
        ("E06000001,Hartlepool,North East,-5", "must be positive"),
        ("E06000001,Hartlepool,North East,lots", "not an integer"),
        ("E06000001,Hartlepool,North East", "expected 4 fields"),
        ("E06000001,,North East,20500", "empty name"),
    ],
)
def test_parse_rows_rejects_malformed_row(bad_row: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as excinfo:
        parse_rows([HEADER, "E09000001,City of London,London,900", bad_row])
    assert "line 3" in str(excinfo.value)


def test_parse_rows_rejects_duplicate_code() -> None:
    with pytest.raises(ValueError, match="duplicate ons_code"):
        parse_rows([HEADER, GOOD_ROW, GOOD_ROW])


def test_parse_rows_rejects_wrong_header() -> None:
    with pytest.raises(ValueError, match="expected header"):
        parse_rows(["code,name,region,children", GOOD_ROW])
