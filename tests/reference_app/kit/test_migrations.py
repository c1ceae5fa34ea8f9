"""The migrations build exactly the schema the models declare, on each backend."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from reference_app.kit.db import make_engine
from reference_app.kit.keys import Keyring
from reference_app.kit.migrate import target_metadata, upgrade
from reference_app.kit.sealing import Sealer, bind
from tests.fixtures.database import Database


def test_migrated_schema_matches_the_models(database: Database) -> None:
    engine = create_engine(database.owner_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, target_metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_a_populated_sqlite_registry_upgrades_keeping_every_row(
    tmp_path: Path, keyring: Keyring
) -> None:
    # A column with a default rebuilds a SQLite table (copy, drop, rename): with foreign keys on,
    # dropping the old children table deleted every involvement and carer link through
    # ON DELETE CASCADE. An empty database never shows it; this one holds a row of each.
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    bind(engine, Sealer.of(keyring))  # the upgrade seals the links' child references
    blob, when = "x'00'", "'2026-01-01 00:00:00'"
    rows = {
        "local_authorities": "(id, ons_code, name, region) "
        "VALUES (1, 'E99999999', 'Testshire', 'North West')",
        "organisations": "(id, name, kind, local_authority_id) VALUES (1, 'School', 'school', 1)",
        "practitioners": "(id, username, display_name_enc, role, organisation_id, "
        "local_authority_id, password_hash, totp_secret_enc, status, authz_version, created_at) "
        f"VALUES (1, 'u1', {blob}, 'education_practitioner', 1, 1, 'x', {blob}, 'active', 1, "
        f"{when})",
        "children": "(id, local_authority_id, gender, given_name_enc, family_name_enc, "
        "date_of_birth_enc, address_enc, given_name_bidx, family_name_bidx, "
        "family_name_phonetic_bidx, date_of_birth_bidx, postcode_bidx, shielded, created_at, "
        f"updated_at) VALUES ('C1', 1, 'female', {', '.join([blob] * 9)}, 0, {when}, {when})",
        "carers": f"(id, given_name_enc, family_name_enc) VALUES (1, {blob}, {blob})",
        "child_carers": "(child_id, carer_id, relationship, parental_responsibility) "
        "VALUES ('C1', 1, 'mother', 1)",
        "involvements": "(id, child_id, organisation_id, practitioner_id, started_on, "
        "is_lead_professional, sensitive, consent_recorded, created_at) "
        f"VALUES (1, 'C1', 1, 1, '2026-01-01', 0, 0, 0, {when})",
        "login_sessions": "(id, practitioner_id, authz_version, created_at, expires_at) "
        f"VALUES ('s1', 1, 1, {when}, {when})",
    }
    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            for table, values in rows.items():
                conn.execute(text(f"INSERT INTO {table} {values}"))
        upgrade(engine)
        with engine.connect() as conn:
            for table in rows:
                count = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                assert count == 1, table
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
