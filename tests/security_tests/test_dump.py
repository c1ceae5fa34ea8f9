"""The dump scan finds each fact in a copy written as the registry wrote it before sealing."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from reference_app.kit.db import make_engine
from reference_app.kit.migrate import upgrade
from security_tests.dump import Subject, scan

BEFORE_SEALING = "0014"
MOMENT = "'2026-01-02 03:04:05.000006'"


def _blob() -> str:
    return "x'" + os.urandom(24).hex() + "'"


def _child(child_id: str, *, shielded: int = 0, household: int = 0, updated: str = MOMENT) -> str:
    # One name and shape for all, as the scenario makes them: ciphertexts of one length.
    index = ", ".join(["x'" + "11" * 16 + "'"] * 5)
    return (
        "INSERT INTO children (id, local_authority_id, gender, given_name_enc, family_name_enc, "
        "date_of_birth_enc, address_enc, given_name_bidx, family_name_bidx, "
        "family_name_phonetic_bidx, date_of_birth_bidx, postcode_bidx, shielded, "
        f"household_shielded, created_at, updated_at) VALUES ('{child_id}', 1, 'female', "
        f"{', '.join(_blob() for _ in range(4))}, {index}, {shielded}, {household}, "
        f"'2026-01-01 00:00:00.000001', {updated})"
    )


def test_a_copy_before_sealing_tells_every_fact(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'before.db'}")
    shield_moment = "'2026-01-03 09:00:00.123456'"
    statements = [
        "INSERT INTO local_authorities (id, ons_code, name, region) "
        "VALUES (1, 'E99999999', 'Testshire', 'North West')",
        "INSERT INTO organisations (id, name, kind, local_authority_id) "
        "VALUES (1, 'Clinic', 'sexual_health_service', 1)",
        _child("SHIELDED", shielded=1, updated=shield_moment),
        _child("SIBLING", household=1),
        _child("CONTROL1"),
        _child("CONTROL2"),
        _child("PATIENT"),
        _child("VIEWED"),
        "INSERT INTO carers (id, given_name_enc, family_name_enc) "
        f"VALUES (1, {_blob()}, {_blob()})",
        "INSERT INTO child_carers (child_id, carer_id, relationship, parental_responsibility) "
        "VALUES ('SHIELDED', 1, 'mother', 1), ('SIBLING', 1, 'mother', 1)",
        "INSERT INTO involvements (id, child_id, organisation_id, started_on, "
        "is_lead_professional, sensitive, consent_recorded, created_at) "
        f"VALUES (1, 'PATIENT', 1, '2026-01-01', 0, 1, 1, {MOMENT})",
        "INSERT INTO audit_events (id, occurred_at, tag, outcome, actor_id, child_id, details) "
        f"VALUES (1, '2026-01-04 10:00:00.000001', 'child:viewed', 'allowed', 7, 'VIEWED', '{{}}'),"
        f" (2, {shield_moment}, 'child:shielded', 'allowed', 8, NULL, '{{}}')",
    ]
    try:
        upgrade(engine, BEFORE_SEALING)
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        subjects = [
            Subject("shielded", "is shielded", "SHIELDED"),
            Subject("sibling", "lives with the shielded child", "SIBLING"),
            Subject("patient", "uses a sensitive service", "PATIENT"),
            Subject("viewed", "was viewed", "VIEWED"),
        ]
        with engine.connect() as conn:
            ways = scan(
                conn, subjects, ["CONTROL1", "CONTROL2"], distinguish={"shielded", "sibling"}
            )
    finally:
        engine.dispose()
    found = {(w.child, w.how) for w in ways}
    assert ("shielded", "children.shielded sets it apart from others") in found
    assert (
        "shielded",
        "audit_events.occurred_at holds a moment of its children row (a join by time)",
    ) in found
    assert ("sibling", "children.household_shielded sets it apart from others") in found
    assert ("sibling", "child_carers.child_id holds its id in clear") in found
    assert ("patient", "involvements.child_id holds its id in clear") in found
    assert ("viewed", "audit_events.child_id holds its id in clear") in found
    # Nothing is said of a child the copy says nothing about.
    assert {w.child for w in ways} == {"shielded", "sibling", "patient", "viewed"}
