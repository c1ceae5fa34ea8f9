"""Watermark rows and download links, without a database: determinism, keys, fictional rules."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest

from reference_app.exports import links, watermark
from reference_app.exports.service import birth_dates, child_ids_in
from reference_app.kit import identifiers
from reference_app.kit.fictional import is_fictional_postcode, validate_row
from reference_app.kit.keys import generate_document, parse_document

TODAY = date(2026, 11, 21)
NEIGHBOURS = [
    watermark.Neighbour("Whitworth", "Preston", "QB17 3XT"),
    watermark.Neighbour("Patel", "Preston", "PR1 2AB"),  # a real-looking postcode: not borrowed
]


def make(key: bytes, export_id: int, **kwargs: object) -> list[watermark.WatermarkChild]:
    options: dict[str, object] = {
        "birth_dates": birth_dates(TODAY, 0, 17),
        "neighbours": NEIGHBOURS,
        "fallback_town": "Lancashire",
        "taken": lambda _id: False,
    }
    options.update(kwargs)
    return watermark.generate(key, export_id, **options)  # type: ignore[arg-type]


def test_the_same_export_always_gets_the_same_rows_and_another_export_others() -> None:
    key = secrets.token_bytes(32)
    assert make(key, 7) == make(key, 7)
    assert {r.child_id for r in make(key, 7)}.isdisjoint({r.child_id for r in make(key, 8)})


def test_without_the_key_the_rows_cannot_be_predicted() -> None:
    first, second = make(secrets.token_bytes(32), 7), make(secrets.token_bytes(32), 7)
    assert {r.child_id for r in first}.isdisjoint({r.child_id for r in second})


def test_rows_are_fictional_well_formed_and_borrow_from_their_scope() -> None:
    key = secrets.token_bytes(32)
    for export_id in range(1, 40):
        rows = make(key, export_id)
        assert len(rows) == watermark.WATERMARK_ROWS
        for row in rows:
            flat = {"child_id": row.child_id, "postcode": row.address["postcode"]}
            assert validate_row(flat) == []
            assert is_fictional_postcode(row.address["postcode"])
            assert row.family_name in {"Whitworth", "Patel"}
            assert row.address["town"] == "Preston"
            assert set(row.address) == {"line1", "line2", "town", "postcode"}
            assert row.gender in {"female", "male"}
            born = date.fromisoformat(row.date_of_birth)
            assert (
                0
                <= TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))
                <= 17
            )
            if row.address["postcode"].startswith("QB17 "):
                continue  # borrowed from the fictional neighbour
            assert not row.address["postcode"].startswith("PR")


def test_an_empty_scope_still_gets_fictional_rows() -> None:
    rows = make(secrets.token_bytes(32), 3, neighbours=[])
    assert all(row.address["town"] == "Lancashire" for row in rows)
    assert all(is_fictional_postcode(row.address["postcode"]) for row in rows)


def test_a_taken_id_is_skipped() -> None:
    key = secrets.token_bytes(32)
    first = make(key, 5)
    taken = {first[0].child_id}
    again = make(key, 5, taken=lambda child_id: child_id in taken)
    assert again[0].child_id != first[0].child_id
    assert identifiers.is_valid(again[0].child_id)
    assert again[1:] == first[1:]


def test_rows_keep_to_the_scope_age_range() -> None:
    rows = make(secrets.token_bytes(32), 11, birth_dates=birth_dates(TODAY, 8, 9))
    for row in rows:
        born = date.fromisoformat(row.date_of_birth)
        age = TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))
        assert age in (8, 9)


@pytest.mark.parametrize(("low", "high"), [(0, 0), (0, 17), (5, 5), (16, 18)])
def test_birth_dates_are_exactly_the_ages_asked(low: int, high: int) -> None:
    found = birth_dates(TODAY, low, high)
    assert found == sorted(found)
    for day in found:
        age = TODAY.year - day.year - ((TODAY.month, TODAY.day) < (day.month, day.day))
        assert low <= age <= high
    # Nothing just outside the range is left out.
    before, after = found[0] - timedelta(days=1), found[-1] + timedelta(days=1)
    for day in (before, after):
        age = TODAY.year - day.year - ((TODAY.month, TODAY.day) < (day.month, day.day))
        assert not low <= age <= high or day > TODAY


def test_child_ids_are_found_in_any_text() -> None:
    ids = [identifiers.new_child_id() for _ in range(3)]
    text = f"leaked: {ids[0]}, {ids[1].lower()} and in prose {ids[2]}. NOTANIDXXXXXX"
    assert child_ids_in(text) == sorted(ids)


KEYRING = parse_document(generate_document())
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_link_names_its_export_user_and_expiry_and_is_signed() -> None:
    token = links.issue(KEYRING, export_id=12, user_id=34, expires_at=LATER)
    claims = links.read(token)
    assert (claims.export_id, claims.user_id, claims.expires_at) == (12, 34, LATER)
    assert links.signed(KEYRING, token)


def test_a_link_from_another_instance_or_edited_is_not_signed() -> None:
    token = links.issue(KEYRING, export_id=12, user_id=34, expires_at=LATER)
    other = parse_document(generate_document())
    assert not links.signed(other, token)
    forged_body = links.issue(other, export_id=13, user_id=34, expires_at=LATER).split(".")[0]
    assert not links.signed(KEYRING, forged_body + "." + token.split(".")[1])
    assert not links.signed(KEYRING, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))


def test_the_link_key_is_derived_for_its_purpose_only() -> None:
    assert KEYRING.subkey(links.PURPOSE) == KEYRING.subkey(links.PURPOSE)
    assert KEYRING.subkey(links.PURPOSE) != KEYRING.subkey(watermark.PRF_PURPOSE)
    assert KEYRING.subkey(links.PURPOSE) != KEYRING.token_secret


@pytest.mark.parametrize("text", ["", "x", "a.b.c", "!!!.???", "e30.AAAA", "W10.AAAA", "x" * 500])
def test_malformed_links_are_refused(text: str) -> None:
    with pytest.raises(links.LinkError):
        links.read(text)
