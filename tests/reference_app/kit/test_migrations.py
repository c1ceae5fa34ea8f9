"""The migrations build exactly the schema the models declare, on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from reference_app.kit.migrate import target_metadata
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
