"""Alembic migrations for the registry schema."""
