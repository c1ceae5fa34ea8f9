"""Provably fictional: each rule on its own, then every row of a generated sample."""

from __future__ import annotations

import pytest

from reference_app.kit import fictional, identifiers
from synthetic_data.plan import build_plan
from synthetic_data.tables import organisations_table, practitioners_table
from tests.fixtures.population import Population


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("07700 900000", True),
        ("07700 900999", True),
        ("0161 496 0123", True),
        ("020 7946 0999", True),
        ("028 9649 6500", True),
        ("028 9649 5500", False),  # below the Belfast drama block
        ("01632 960001", True),
        ("07700 901000", False),  # just past the mobile drama range
        ("07911 123456", False),  # an ordinary mobile number
        ("0161 496 01234", False),
        ("", False),
    ],
)
def test_drama_numbers(phone: str, ok: bool) -> None:
    assert fictional.is_drama_number(phone) is ok


def test_every_generated_drama_number_is_in_a_range() -> None:
    blocks = len(fictional.DRAMA_LANDLINE_BLOCKS)
    assert all(fictional.is_drama_number(fictional.drama_mobile(n)) for n in range(1000))
    assert all(fictional.is_drama_number(fictional.drama_landline(n)) for n in range(1000 * blocks))


@pytest.mark.parametrize(
    ("email", "ok"),
    [
        ("amelia.smith12@example.com", True),
        ("a@example.org", True),
        ("a@EXAMPLE.NET", True),
        ("a@example.co.uk", False),
        ("someone@gmail.com", False),
        ("@example.com", False),
        ("example.com", False),
    ],
)
def test_reserved_email_domains(email: str, ok: bool) -> None:
    assert fictional.is_reserved_email(email) is ok


@pytest.mark.parametrize(
    ("postcode", "ok"),
    [
        ("QA1 2AB", True),
        ("QZ96 9ZZ", True),
        ("SW1A 1AA", False),  # a real area
        ("PR1 2AB", False),
        ("QA1 2AC", False),  # C is never an inward letter
        ("QA12AB", False),
    ],
)
def test_fictional_postcodes(postcode: str, ok: bool) -> None:
    assert fictional.is_fictional_postcode(postcode) is ok


def test_nhs_test_range_and_check_digit() -> None:
    assert fictional.is_test_nhs_number("999 000 0018")  # 9,9,9,0,0,0,0,0,1 -> check 8
    assert not fictional.is_test_nhs_number("999 000 0017")
    assert not fictional.is_test_nhs_number("943 476 5919")  # valid check, not the test range


def test_child_ids_need_their_check_character() -> None:
    good = identifiers.new_child_id()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert fictional.validate_row({"child_id": good}) == []
    assert [v.rule for v in fictional.validate_row({"child_id": bad})] == [
        "child_id_check_character"
    ]


def test_every_rule_states_itself() -> None:
    names = {r.name for r in fictional.RULES}
    assert names == {
        "phone_in_drama_range",
        "email_on_reserved_domain",
        "postcode_in_unused_area",
        "child_id_check_character",
        "nhs_number_in_test_range",
    }
    assert all(r.statement for r in fictional.RULES)


def test_the_validator_catches_a_real_looking_row() -> None:
    row = {"phone": "07911 123456", "email": "x@gmail.com", "postcode": "SW1A 1AA"}
    assert {v.rule for v in fictional.validate_row(row)} == {
        "phone_in_drama_range",
        "email_on_reserved_domain",
        "postcode_in_unused_area",
    }


def test_every_row_of_a_generated_sample_is_fictional(population: Population) -> None:
    children = population.children().to_pylist()
    carers = population.carers().to_pylist()
    assert len(children) >= 100_000
    checked, violations = fictional.validate_rows(children)
    assert checked == len(children)
    assert violations == []
    checked, violations = fictional.validate_rows(carers)
    assert checked == len(carers)
    assert violations == []
    # The rules did run: every row had the fields they apply to.
    assert all(row["child_id"] and row["postcode"] for row in children)
    assert sum(1 for row in carers if row["email"]) > 0.5 * len(carers)


def test_every_organisation_and_practitioner_is_fictional(population: Population) -> None:
    plan = population.plan
    rows = []
    for la in [*plan.las, None]:
        rows += organisations_table(plan, la).to_pylist()
        rows += practitioners_table(plan, la).to_pylist()
    checked, violations = fictional.validate_rows(rows)
    assert checked == len(rows) == plan.organisation_count + plan.practitioner_count
    assert violations == []


def test_canaries_and_sample_rows_are_valid_and_distinct() -> None:
    from synthetic_data.plan import Options
    from synthetic_data.population import generate_chunk
    from synthetic_data.tables import chunk_tables

    plan = build_plan(Options(children=20_000, canaries=12))
    canary_chunk = plan.chunks[-1]
    assert canary_chunk.canary
    assert canary_chunk.count == 12
    data = generate_chunk(plan, canary_chunk)
    assert len(data.sample) == 0  # canaries never enter the load sample
    rows = chunk_tables(plan, data).children.to_pylist()
    assert fictional.validate_rows(rows)[1] == []
    assert len({r["child_id"] for r in rows}) == 12
