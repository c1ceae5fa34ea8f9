"""Everything one running registry instance holds: settings, keys, database and clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from reference_app.config import LimitsBackend, Settings
from reference_app.kit.clock import Clock
from reference_app.kit.crypto import Crypto
from reference_app.kit.db import make_engine, make_session_factory
from reference_app.kit.gate import CredentialGate
from reference_app.kit.keys import Keyring, load_keyring
from reference_app.kit.sealing import Sealer, bind
from reference_app.limits.store import DatabaseStore, LimitStore, MemoryStore, RedisStore


@dataclass
class AppContext:
    settings: Settings
    keyring: Keyring
    crypto: Crypto
    engine: Engine
    sessions: sessionmaker[Session]
    password_hasher: PasswordHasher
    # A real hash to verify against when the username is unknown, so both cost the same.
    dummy_password_hash: str
    limits: LimitStore
    clock: Clock = field(default_factory=Clock)
    # Lanes for password hashing, from the settings.
    credential_gate: CredentialGate = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.credential_gate = CredentialGate(
            s.login_hash_concurrency, s.login_queue, s.login_queue_wait_seconds
        )


def make_limit_store(settings: Settings, engine: Engine) -> LimitStore:
    """The store every worker shares for limits (memory only for a single process)."""
    if settings.limits_store is LimitsBackend.REDIS:
        assert settings.limits_redis_url is not None  # Settings refuse redis without a URL
        return RedisStore(settings.limits_redis_url, timeout=settings.limits_redis_timeout_seconds)
    # SQLite serves one process (the demo), and its single writer lock is held by the request
    # itself, so a second connection could not count: limits live in that process's memory.
    if settings.limits_store is LimitsBackend.MEMORY or engine.dialect.name == "sqlite":
        return MemoryStore()
    return DatabaseStore(engine)


def make_password_hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    """The Argon2id hasher accounts are stored with (also used to give personas passwords)."""
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=RFC_9106_LOW_MEMORY.hash_len,
        salt_len=RFC_9106_LOW_MEMORY.salt_len,
    )


def build_context(
    settings: Settings,
    *,
    keyring: Keyring | None = None,
    clock: Clock | None = None,
    serving: bool = False,
) -> AppContext:
    """Load keys, open the database and prepare the password hasher for one instance.

    ``serving``: the API server's instance, whose statements are cut off at
    ``database_statement_timeout_seconds`` (a command's long scan, a verify or a backup, is
    not)."""
    keys = keyring if keyring is not None else load_keyring(settings)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        connect_timeout=settings.database_connect_timeout_seconds,
        statement_timeout=settings.database_statement_timeout_seconds if serving else None,
        pool_timeout=settings.database_pool_timeout_seconds,
    )
    bind(engine, Sealer.of(keys))
    hasher = make_password_hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    return AppContext(
        settings=settings,
        keyring=keys,
        crypto=Crypto(keys),
        engine=engine,
        sessions=make_session_factory(engine),
        password_hasher=hasher,
        dummy_password_hash=hasher.hash("not-a-real-password-but-the-same-cost"),
        limits=make_limit_store(settings, engine),
        clock=clock or Clock(),
    )
