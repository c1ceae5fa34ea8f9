"""Everything one running registry instance holds: settings, keys, database and clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from reference_app.config import Settings
from reference_app.kit.clock import Clock
from reference_app.kit.crypto import Crypto
from reference_app.kit.db import make_engine, make_session_factory
from reference_app.kit.keys import Keyring, load_keyring


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
    clock: Clock = field(default_factory=Clock)


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
    settings: Settings, *, keyring: Keyring | None = None, clock: Clock | None = None
) -> AppContext:
    """Load keys, open the database and prepare the password hasher for one instance."""
    keys = keyring if keyring is not None else load_keyring(settings)
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
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
        clock=clock or Clock(),
    )
