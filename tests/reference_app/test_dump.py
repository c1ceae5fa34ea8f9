"""A stolen dump reveals nothing: no clear-text personal value from the seeded population."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reference_app.app import create_app
from reference_app.carers.models import Carer
from reference_app.children.models import Child
from reference_app.context import AppContext
from reference_app.kit.keys import Keyring
from reference_app.practitioners.models import Practitioner
from tests.fixtures.database import Database, make_context
from tests.fixtures.population import generate_into, persona_headers
from tests.fixtures.postgres import local_bindir


@pytest.fixture
def seeded(fresh_database: Database, keyring: Keyring, tmp_path: Path) -> Iterator[AppContext]:
    # The generator's own load path, with every kind of row: children, carers, services,
    # practitioners, shielded children and canaries.
    generated = generate_into(fresh_database, keyring, tmp_path, children=400, seed=11)
    ctx = make_context(fresh_database, keyring)
    # Put the trail to work too: a login, a search and a view with free-text reason.
    with TestClient(create_app(ctx)) as client:
        headers = persona_headers(client, generated.persona("la_data_manager"))
        with ctx.sessions() as db:
            child = next(c for c in db.scalars(select(Child)) if not c.shielded)
            family = ctx.crypto.cipher.decrypt(child.family_name_enc, "children.family_name")
        client.post(
            "/api/v1/children/search",
            json={"family_name": family, "given_name": "X"},
            headers=headers,
        )
        client.get(
            f"/api/v1/children/{child.id}",
            headers={**headers, "X-Access-Reason": f"safeguarding; about {family}"},
        )
    yield ctx
    ctx.engine.dispose()


def personal_values(ctx: AppContext) -> set[str]:
    """Every personal value the database holds, decrypted with the instance's keys."""
    cipher = ctx.crypto.cipher
    values: set[str] = set()
    with ctx.sessions() as db:
        for child in db.scalars(select(Child)):
            values.add(cipher.decrypt(child.given_name_enc, "children.given_name"))
            values.add(cipher.decrypt(child.family_name_enc, "children.family_name"))
            values.add(cipher.decrypt(child.date_of_birth_enc, "children.date_of_birth"))
            address = json.loads(cipher.decrypt(child.address_enc, "children.address"))
            values.update(v for v in (address["line1"], address["postcode"]) if v)
        for carer in db.scalars(select(Carer)):
            values.add(cipher.decrypt(carer.given_name_enc, "carers.given_name"))
            for blob, context in (
                (carer.phone_enc, "carers.phone"),
                (carer.email_enc, "carers.email"),
            ):
                if blob:
                    values.add(cipher.decrypt(blob, context))
        for user in db.scalars(select(Practitioner)):
            values.add(cipher.decrypt(user.totp_secret_enc, "practitioners.totp_secret"))
            if user.email_enc:
                values.add(cipher.decrypt(user.email_enc, "practitioners.email"))
    return {v for v in values if len(v) >= 4}


def service_dates(ctx: AppContext) -> set[str]:
    from reference_app.services.models import Involvement

    with ctx.sessions() as db:
        rows = db.execute(
            select(Involvement.started_on, Involvement.ended_on, Involvement.caf_assessment_on)
        ).all()
    return {d.isoformat() for row in rows for d in row if d is not None}


def schema_words(ctx: AppContext, database: Database) -> set[str]:
    """Words of the schema and of the registry's own vocabularies: a dump holds them anyway.

    A surname equal to one of them (Grant, as in SQL's GRANT; Foster, as in foster_carer) cannot
    be told apart from the schema by looking, so it is not counted as a leak.
    """
    from reference_app.access.permissions import Role
    from reference_app.carers.models import Relationship
    from reference_app.services.models import OrganisationKind

    if database.backend == "sqlite":
        with ctx.engine.connect() as conn:
            text = " ".join(
                row[0] or "" for row in conn.exec_driver_sql("SELECT sql FROM sqlite_master")
            )
    else:
        text = _pg_dump(database, "--schema-only")
    text += " ".join(str(v) for e in (Role, Relationship, OrganisationKind) for v in e)
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _pg_dump(database: Database, *args: str) -> str:
    pg_dump = shutil.which("pg_dump") or (
        str(local_bindir() / "pg_dump") if local_bindir() else None
    )
    if pg_dump is None:
        pytest.fail("pg_dump is needed for the PostgreSQL dump test")
    url = database.owner_url.replace("postgresql+psycopg://", "postgresql://")
    return subprocess.run(
        [pg_dump, "--no-owner", *args, url], check=True, capture_output=True, text=True
    ).stdout


def dump(ctx: AppContext, database: Database) -> str:
    if database.backend == "sqlite":
        assert database.sqlite_path is not None
        ctx.engine.dispose()
        parts = []
        for suffix in ("", "-wal"):
            path = database.sqlite_path.with_name(database.sqlite_path.name + suffix)
            if path.exists():
                parts.append(path.read_bytes().decode("latin-1"))
        with sqlite3.connect(database.sqlite_path) as conn:
            parts.append("\n".join(conn.iterdump()))
        return "\n".join(parts)
    return _pg_dump(database)


def leaks(ctx: AppContext, database: Database) -> list[str]:
    schema = schema_words(ctx, database)
    values = {v for v in personal_values(ctx) if v.lower() not in schema}
    assert len(values) > 1000  # names, dates, addresses, phones, emails of 400 children
    text = dump(ctx, database).lower()
    # Positive control: the dump is readable, and plain reference data does show.
    assert "lancashire" in text
    assert "children" in text
    # Service dates (involvement start, CAF) are stored in clear by design; a birth date that
    # happens to equal one of them is a coincidence of the calendar, not a leak.
    # Whole words only: "Smith" inside "Hammersmith and Fulham" is reference data, not a leak.
    dates = service_dates(ctx)
    # A value can only occur as whole words if each of its words does: a cheap set lookup first,
    # the exact search only for the few candidates (thousands of values, a dump of megabytes).
    words = set(re.findall(r"[a-z0-9]+", text))
    candidates = [
        v
        for v in values
        if v not in dates and all(w in words for w in re.findall(r"[a-z0-9]+", v.lower()))
    ]
    blobs = stored_blobs(database)
    leaked = sorted(
        v
        for v in candidates
        if any(
            not inside_a_blob(text, m.start(), m.end(), blobs)
            for m in re.finditer(rf"(?<![a-z0-9]){re.escape(v.lower())}(?![a-z0-9])", text)
        )
    )
    return leaked


def stored_blobs(database: Database) -> list[str]:
    """Every binary value SQLite stores (ciphertexts, hashes), as the raw file's text shows it.

    The raw file is read as bytes, and four random bytes of ciphertext spell a four-letter name
    as whole word a few times in a hundred runs ("gail" between two non-letters). A match that
    overlaps a value the database holds as binary is that coincidence, not clear text.
    """
    if database.backend != "sqlite":
        return []  # pg_dump writes binary values as hex
    assert database.sqlite_path is not None
    blobs: list[str] = []
    with sqlite3.connect(database.sqlite_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                blobs.extend(v.decode("latin-1").lower() for v in row if isinstance(v, bytes))
    return blobs


def inside_a_blob(text: str, start: int, end: int, blobs: list[str]) -> bool:
    """Whether some stored binary value occurs in the text over any of [start, end)."""
    for blob in blobs:
        at = text.find(blob, max(0, start - len(blob) + 1), end + len(blob) - 1)
        while at != -1 and at < end:
            if at + len(blob) > start:
                return True
            at = text.find(blob, at + 1, end + len(blob) - 1)
    return False


def test_a_dump_holds_no_clear_text_personal_data(
    seeded: AppContext, fresh_database: Database
) -> None:
    assert leaks(seeded, fresh_database) == []


def test_the_dump_check_finds_a_planted_clear_text_value(
    seeded: AppContext, fresh_database: Database
) -> None:
    from reference_app.services.models import Organisation

    with seeded.sessions() as db, db.begin():
        carer = db.scalars(select(Carer).where(Carer.phone_enc.is_not(None))).first()
        assert carer is not None
        assert carer.phone_enc is not None
        phone = seeded.crypto.cipher.decrypt(carer.phone_enc, "carers.phone")
        org = db.scalars(select(Organisation)).first()
        assert org is not None
        org.phone = phone  # a careless copy of a carer's number into a clear-text column
    assert phone in leaks(seeded, fresh_database)


def test_a_name_spelt_by_ciphertext_bytes_is_not_a_leak() -> None:
    blob = "\x95\x10gail\xf1v"
    text = f"row\x02{blob}\x03gail\x00"
    first = text.index("gail")
    second = text.index("gail", first + 1)
    assert inside_a_blob(text, first, first + 4, [blob])
    assert not inside_a_blob(text, second, second + 4, [blob])
    # A match straddling a blob's end ("mi" closing a ciphertext, "la_data_manager" after it).
    straddle = f"\x13{blob[:-1]}mi" + "la_data_manager"
    at = straddle.index("mila")
    assert inside_a_blob(straddle, at, at + 4, [blob[:-1] + "mi"])
