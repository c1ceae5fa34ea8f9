"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reference_app.kit.db import make_engine
from reference_app.kit.migrate import target_metadata
from tests.fixtures.database import Database


def test_the_migrated_schema_matches_the_models(fresh_database: Database) -> None:
    engine = make_engine(fresh_database.owner_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), target_metadata)
    finally:
        engine.dispose()
    assert differences == []
