"""Database plumbing: declarative base, UTC timestamps, engines for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC on every backend; hand back aware UTC, so both databases hash alike."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for a plain postgresql:// URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def owner_only_sqlite_file(url: str) -> None:
    """Create a SQLite database file readable and writable by its owner only (0600), or take
    group and other access away from an existing one.

    SQLite creates a missing file with the process umask (often 0644: world-readable personal
    data), and gives its -wal and -shm files the main file's mode, so the main file decides.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(database).st_mode)
        if mode & 0o077:
            # Another user's file (a read-only reader): leave it; its owner's engine tightens it.
            with contextlib.suppress(PermissionError):
                os.chmod(database, mode & 0o700)
        return
    except FileNotFoundError:
        return  # no such directory: SQLite's own error on connect says so
    os.close(fd)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    read_only: bool = False,
    connect_timeout: int | None = None,
    statement_timeout: float | None = None,
    pool_timeout: float | None = None,
) -> Engine:
    """Create an engine tuned for the registry's workload on either backend.

    ``read_only`` (SQLite): transactions only read and begin deferred, for a long consistent
    read such as a backup that must not hold the write lock.

    Bounded waits, for a serving process (``None``: the drivers' defaults): ``connect_timeout``
    (PostgreSQL, whole seconds), ``statement_timeout`` seconds (PostgreSQL's server-side
    ``statement_timeout``; SQLite's wait for the write lock, else 30 s), ``pool_timeout``
    seconds to wait for a pooled connection.
    """
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if is_sqlite(url):
        owner_only_sqlite_file(url)
        busy = statement_timeout if statement_timeout else 30.0
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; let SQLAlchemy emit it instead.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            if read_only:
                cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Nearly every request writes its audit event after reading. A deferred transaction
            # would fail at once ("database is locked", no busy wait) when another writer, such
            # as the sealer, committed since its read; IMMEDIATE takes the write lock up front
            # and waits its turn under busy_timeout.
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    # No ping before each checkout: it is a round trip on every request. A connection the server
    # dropped fails its request instead, which is answered 503 (``kit.middleware``), and
    # SQLAlchemy then recycles every connection of the pool opened before the failure.
    kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    connect_args: dict[str, Any] = {}
    if connect_timeout is not None:
        connect_args["connect_timeout"] = connect_timeout
    if statement_timeout:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    if connect_args:
        kwargs["connect_args"] = connect_args
    if pool_timeout is not None:
        kwargs["pool_timeout"] = pool_timeout
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def snapshot(engine: Engine, *, read_only: bool = False) -> Iterator[Connection]:
    """One transaction that reads the database as at one moment, always rolled back.

    PostgreSQL reads each statement afresh under READ COMMITTED, and a plain pysqlite connection
    runs each SELECT outside any transaction, so a reader of two tables (checkpoints, then the
    entries they sign) could see a writer's commit land between them. REPEATABLE READ on
    PostgreSQL, and an explicit BEGIN where pysqlite has not begun one, give one view.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=read_only
            )
        with conn.begin() as transaction:
            try:
                if engine.dialect.name == "sqlite":
                    driver = conn.connection.dbapi_connection
                    if driver is not None and not driver.in_transaction:
                        conn.exec_driver_sql("BEGIN")
                yield conn
            finally:
                transaction.rollback()
