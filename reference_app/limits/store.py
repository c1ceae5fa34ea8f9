"""Shared stores for limits: the database, Redis, or memory for the single-process demo.

Limits must hold across every worker and instance of a deployment, so counts live in a store the
workers share. Three operations are enough for every limit and detector here:

- ``incr``: a counter with a time to live (a fixed window when the window is part of the key,
  a block when the key names one);
- ``add``: an expiring set, optionally capped (distinct children viewed today);
- ``add_all``: several members at once, all or none under the cap (a search's results);
- ``recent``: the last few time stamps of a stream (machine-like timing).

Writes go in their own short transaction, never the request's: a refused or failed request
(an enumeration probe answered 404) must still count.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, bindparam, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from reference_app.kit.db import UTCDateTime
from reference_app.limits.models import LimitCounter, LimitMember

_PURGE_EVERY = 2000  # operations between sweeps of expired rows in the database store


class LimitOps(Protocol):
    """The operations of one store, within one transaction where the store has them."""

    def incr(self, key: str, ttl: int, now: datetime, by: int = 1) -> int:
        """Add ``by`` to the counter (created with ``ttl`` seconds to live); return its value."""
        ...

    def ttl(self, key: str, now: datetime) -> int:
        """Seconds the counter still lives (0 when absent or expired)."""
        ...

    def add(
        self, key: str, member: str, ttl: int, now: datetime, cap: int | None = None
    ) -> tuple[int, bool]:
        """Add ``member`` unless the set already holds ``cap`` others; return (size, admitted)."""
        ...

    def add_all(
        self, key: str, members: Sequence[str], ttl: int, now: datetime, cap: int
    ) -> tuple[int, bool]:
        """Add every member if the set then holds at most ``cap``, else none; (size, admitted)."""
        ...

    def recent(self, key: str, stamp_ms: int, ttl: int, keep: int, now: datetime) -> list[int]:
        """Record a time stamp; return up to ``keep`` latest stamps, newest first."""
        ...


class LimitStore(Protocol):
    name: str

    def open(self) -> AbstractContextManager[LimitOps]: ...


class MemoryOps:
    """Process-local state: only for one process (the demo), never for several workers."""

    def __init__(self) -> None:
        self.counters: dict[str, tuple[int, datetime]] = {}
        self.sets: dict[str, tuple[set[str], datetime]] = {}
        self.streams: dict[str, tuple[list[int], datetime]] = {}

    def incr(self, key: str, ttl: int, now: datetime, by: int = 1) -> int:
        count, expires = self.counters.get(key, (0, now))
        if expires <= now:
            count, expires = 0, now + timedelta(seconds=ttl)
        self.counters[key] = (count + by, expires)
        return count + by

    def ttl(self, key: str, now: datetime) -> int:
        _, expires = self.counters.get(key, (0, now))
        return max(0, int((expires - now).total_seconds() + 0.999))

    def add(
        self, key: str, member: str, ttl: int, now: datetime, cap: int | None = None
    ) -> tuple[int, bool]:
        members, expires = self.sets.get(key, (set(), now))
        if expires <= now:
            members, expires = set(), now + timedelta(seconds=ttl)
        admitted = member in members or cap is None or len(members) < cap
        if admitted:
            members.add(member)
        self.sets[key] = (members, expires)
        return len(members), admitted

    def add_all(
        self, key: str, members: Sequence[str], ttl: int, now: datetime, cap: int
    ) -> tuple[int, bool]:
        held, expires = self.sets.get(key, (set(), now))
        if expires <= now:
            held, expires = set(), now + timedelta(seconds=ttl)
        grown = held | set(members)
        if len(grown) > cap:
            return len(held), False
        self.sets[key] = (grown, expires)
        return len(grown), True

    def recent(self, key: str, stamp_ms: int, ttl: int, keep: int, now: datetime) -> list[int]:
        stamps, _ = self.streams.get(key, ([], now))
        horizon = stamp_ms - ttl * 1000
        stamps = [*[s for s in stamps if s > horizon][-(keep - 1) :], stamp_ms]
        self.streams[key] = (stamps, now + timedelta(seconds=ttl))
        return sorted(stamps, reverse=True)


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._ops = MemoryOps()
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[LimitOps]:
        with self._lock:
            yield self._ops


def dialect_insert(engine: Engine) -> Any:
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


class DatabaseOps:
    """Counters and sets as rows, updated with single-statement upserts."""

    def __init__(self, connection: Any, insert: Any) -> None:
        self.conn = connection
        self.insert = insert

    def incr(self, key: str, ttl: int, now: datetime, by: int = 1) -> int:
        table = LimitCounter.__table__
        now_param = bindparam("now", now, type_=UTCDateTime())
        stmt = self.insert(table).values(key=key, count=by, expires_at=now + timedelta(seconds=ttl))
        expired = table.c.expires_at <= now_param
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((expired, stmt.excluded.count), else_=table.c.count + by),
                "expires_at": case((expired, stmt.excluded.expires_at), else_=table.c.expires_at),
            },
        ).returning(table.c.count)
        return int(self.conn.execute(stmt).scalar_one())

    def ttl(self, key: str, now: datetime) -> int:
        expires = self.conn.execute(
            select(LimitCounter.expires_at).where(LimitCounter.key == key)
        ).scalar()
        if expires is None or expires <= now:
            return 0
        return max(0, int((expires - now).total_seconds() + 0.999))

    def _live(self, key: str, now: datetime) -> Any:
        return and_(LimitMember.key == key, LimitMember.expires_at > now)

    def add(
        self, key: str, member: str, ttl: int, now: datetime, cap: int | None = None
    ) -> tuple[int, bool]:
        live = self._live(key, now)
        # Size, whether ``member`` is in, and the set's expiry, in one read.
        size, present, first = self.conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((LimitMember.member == member, 1), else_=0)), 0),
                func.min(LimitMember.expires_at),
            ).where(live)
        ).one()
        size, present = int(size), bool(present)
        if not present and cap is not None and size >= cap:
            return size, False
        if not present:
            # The set expires as a whole: new members share the first member's expiry.
            expires = first or now + timedelta(seconds=ttl)
            stmt = self.insert(LimitMember.__table__).values(
                key=key, member=member, expires_at=expires
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["key", "member"], set_={"expires_at": expires}
            )
            self.conn.execute(stmt)
            size += 1
        return size, True

    def add_all(
        self, key: str, members: Sequence[str], ttl: int, now: datetime, cap: int
    ) -> tuple[int, bool]:
        wanted = sorted(set(members))
        live = self._live(key, now)
        size, first = self.conn.execute(
            select(func.count(), func.min(LimitMember.expires_at)).where(live)
        ).one()
        held = set(
            self.conn.execute(
                select(LimitMember.member).where(live, LimitMember.member.in_(wanted))
            ).scalars()
        )
        new = [m for m in wanted if m not in held]
        size = int(size)
        if size + len(new) > cap:
            return size, False
        if new:
            expires = first or now + timedelta(seconds=ttl)
            stmt = self.insert(LimitMember.__table__).values(
                [{"key": key, "member": m, "expires_at": expires} for m in new]
            )
            self.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key", "member"], set_={"expires_at": stmt.excluded.expires_at}
                )
            )
        return size + len(new), True

    def recent(self, key: str, stamp_ms: int, ttl: int, keep: int, now: datetime) -> list[int]:
        member = f"{stamp_ms:015d}"
        stmt = self.insert(LimitMember.__table__).values(
            key=key, member=member, expires_at=now + timedelta(seconds=ttl)
        )
        self.conn.execute(stmt.on_conflict_do_nothing())
        rows = self.conn.execute(
            select(LimitMember.member)
            .where(self._live(key, now))
            .order_by(LimitMember.member.desc())
            .limit(keep)
        ).scalars()
        stamps = [int(m) for m in rows]
        if len(stamps) == keep:  # forget what can no longer be among the latest
            self.conn.execute(
                delete(LimitMember).where(
                    LimitMember.key == key, LimitMember.member < f"{stamps[-1]:015d}"
                )
            )
        return stamps

    def purge(self, now: datetime) -> None:
        self.conn.execute(delete(LimitCounter).where(LimitCounter.expires_at <= now))
        self.conn.execute(delete(LimitMember).where(LimitMember.expires_at <= now))


class DatabaseStore:
    """The registry's own database: shared by every worker, nothing more to run."""

    name = "database"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = dialect_insert(engine)
        self._ops = 0
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[LimitOps]:
        """Counts are committed even when the caller goes on to refuse the request."""
        with self.engine.connect() as connection:
            try:
                yield DatabaseOps(connection, self._insert)
            except SQLAlchemyError:
                connection.rollback()
                raise
            finally:
                transaction = connection.get_transaction()
                if transaction is not None and transaction.is_active:
                    connection.commit()
        with self._lock:
            self._ops += 1
            sweep = self._ops % _PURGE_EVERY == 0
        if sweep:
            with self.engine.begin() as connection:
                DatabaseOps(connection, self._insert).purge(datetime.now(UTC))


class RedisOps:
    """Counters, sets and sorted sets in Redis; the capped add is one Lua script (atomic)."""

    _ADD = """
    local present = redis.call('SISMEMBER', KEYS[1], ARGV[1])
    local size = redis.call('SCARD', KEYS[1])
    local cap = tonumber(ARGV[3])
    if present == 0 and cap >= 0 and size >= cap then return {size, 0} end
    if present == 0 then
        redis.call('SADD', KEYS[1], ARGV[1])
        size = size + 1
        if size == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
    end
    return {size, 1}
    """

    _ADD_ALL = """
    local size = redis.call('SCARD', KEYS[1])
    local cap = tonumber(ARGV[2])
    local new = 0
    for i = 3, #ARGV do
        if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then new = new + 1 end
    end
    if size + new > cap then return {size, 0} end
    if new > 0 then
        redis.call('SADD', KEYS[1], unpack(ARGV, 3))
        if size == 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
    end
    return {size + new, 1}
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._add = client.register_script(self._ADD)
        self._add_all = client.register_script(self._ADD_ALL)

    def incr(self, key: str, ttl: int, now: datetime, by: int = 1) -> int:
        k = self.prefix + key
        pipe = self.client.pipeline()
        pipe.incrby(k, by)
        pipe.expire(k, ttl, nx=True)
        return int(pipe.execute()[0])

    def ttl(self, key: str, now: datetime) -> int:
        left = int(self.client.pttl(self.prefix + key))
        return 0 if left <= 0 else (left + 999) // 1000

    def add(
        self, key: str, member: str, ttl: int, now: datetime, cap: int | None = None
    ) -> tuple[int, bool]:
        size, admitted = self._add(
            keys=[self.prefix + key], args=[member, ttl, -1 if cap is None else cap]
        )
        return int(size), bool(admitted)

    def add_all(
        self, key: str, members: Sequence[str], ttl: int, now: datetime, cap: int
    ) -> tuple[int, bool]:
        wanted = sorted(set(members))
        if not wanted:
            return self.client.scard(self.prefix + key), True
        size, admitted = self._add_all(keys=[self.prefix + key], args=[ttl, cap, *wanted])
        return int(size), bool(admitted)

    def recent(self, key: str, stamp_ms: int, ttl: int, keep: int, now: datetime) -> list[int]:
        k = self.prefix + key
        pipe = self.client.pipeline()
        pipe.zadd(k, {str(stamp_ms): stamp_ms})
        pipe.zremrangebyrank(k, 0, -(keep + 1))
        pipe.zremrangebyscore(k, "-inf", stamp_ms - ttl * 1000)
        pipe.expire(k, ttl)
        pipe.zrevrange(k, 0, keep - 1)
        return [int(m) for m in pipe.execute()[-1]]


class RedisStore:
    """Redis, when configured (``CONTACTPOINT_LIMITS_REDIS_URL``): cheaper at national scale."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "cp:limits:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, decode_responses=True)
        self._ops = RedisOps(self.client, prefix)

    @contextmanager
    def open(self) -> Iterator[LimitOps]:
        yield self._ops
