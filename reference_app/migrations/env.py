"""Alembic environment: runs migrations on the connection handed over by ``kit.migrate``."""

from __future__ import annotations

from alembic import context

from reference_app.kit.migrate import target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
