"""Schema migrations and least-privilege grants, run by `contactpoint db upgrade`."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

import reference_app.alerts.models
import reference_app.audit.models
import reference_app.carers.models
import reference_app.children.models
import reference_app.detection.models
import reference_app.exports.models
import reference_app.limits.models
import reference_app.localauthorities.models
import reference_app.practitioners.models
import reference_app.requests.models
import reference_app.services.models  # noqa: F401  (register every table on the metadata)
from reference_app.kit.db import Base

target_metadata = Base.metadata

AUDIT_TABLES = ("audit_events", "audit_log_entries", "audit_checkpoints", "audit_search_hits")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("reference_app") / "migrations"))
    config.attributes["engine"] = engine
    return config


def upgrade(
    engine: Engine, revision: str = "head", *, connection: Connection | None = None
) -> None:
    """Bring the schema to ``revision`` in one transaction: the caller's, when it passes one.

    On SQLite, adding a column with a default or a constraint rebuilds the table (copy, drop,
    rename); with foreign keys enforced, dropping the old table deletes every row that refers to
    it through ``ON DELETE CASCADE`` (a registry's involvements and carer links went with its
    children). So, as SQLite's own procedure for such changes says, foreign keys are off for the
    upgrade and checked in full before it commits.
    """
    if connection is None:
        with engine.connect() as own:
            sqlite = engine.dialect.name == "sqlite"
            driver = own.connection.dbapi_connection
            if sqlite and driver is not None:
                # Outside any transaction (SQLite ignores it inside one): the driver's own call.
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                with own.begin():
                    upgrade(engine, revision, connection=own)
                    if sqlite:
                        broken = own.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(
                                f"the upgrade would leave {len(broken)} rows referring to "
                                f"missing ones (first in {broken[0][0]}); nothing was changed"
                            )
            finally:
                if sqlite and driver is not None:
                    driver.execute("PRAGMA foreign_keys=ON")
        return
    config = alembic_config(engine)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, "alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def grant_app_role(engine: Engine, role: str) -> None:
    """Create ``role`` if needed and grant it what the app needs, and no more.

    The role may read and write the registry's tables, but only read and insert the audit
    trail: it can neither update nor delete an audit row (ASVS 16.4.2). It may delete pending
    markers, which are not evidence (an unsealed event is reported by `audit verify`).
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("database roles exist on PostgreSQL only")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"unsafe role name {role!r}")
    tables = list(target_metadata.sorted_tables)
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if exists.first() is None:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"'))
        for table in tables:
            if table.name in AUDIT_TABLES:
                privileges = "SELECT, INSERT"
            elif table.name == "audit_pending":
                privileges = "SELECT, INSERT, DELETE"
            else:
                privileges = "SELECT, INSERT, UPDATE, DELETE"
            conn.execute(text(f'GRANT {privileges} ON TABLE "{table.name}" TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON TABLE alembic_version TO "{role}"'))
        conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
