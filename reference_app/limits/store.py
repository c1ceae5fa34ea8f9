"""Shared stores for limits: the database, Redis, or memory for the single-process demo.

Limits must hold across every worker and instance of a deployment, so counts live in a store the
workers share. Three operations are enough for every limit and detector here:

- ``incr``: a counter with a time to live (a fixed window when the window is part of the key,
  a block when the key names one);
- ``add``: an expiring set, optionally capped (distinct children viewed today);
- ``add_all``: several members at once, all or none under the cap (a search's results);
- ``slide``: a set whose members each fall out ``ttl`` seconds after they were last added
  (distinct surnames searched in the last hour: a window that slides, so a sweep cannot hide
  by straddling the turn of a clock hour, as it can with a fixed window);
- ``recent``: the last few time stamps of a stream (machine-like timing).

Writes go in their own short transaction, never the request's: a refused or failed request
(an enumeration probe answered 404) must still count.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, and_, bindparam, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from reference_app.kit.db import UTCDateTime
from reference_app.limits.models import LimitCounter, LimitMember

_PURGE_EVERY = 2000  # operations between sweeps of expired rows in the database store


# -- a request's checks as one gate ------------------------------------------------------------
# A search or view passes several limits in turn, each stopping the request if it fails. The
# steps go to the store together (``gate``), which runs them in order and stops at the first
# that fails: Redis runs the lot as one script (one round trip), the database in one
# transaction. The caller then decides what the stop means (``limits.service``).


@dataclass(frozen=True, slots=True)
class Ttl:
    """Stops while the counter ``key`` lives (a block); value: seconds left."""

    key: str


@dataclass(frozen=True, slots=True)
class Incr:
    """Counts one more (``by``); stops when the count passes ``limit``; value: the count."""

    key: str
    ttl: int
    limit: int
    by: int = 1


@dataclass(frozen=True, slots=True)
class Timing:
    """Records a time stamp; stops when the latest ``keep`` stamps come as no person makes them
    (``machine_like``); value: 1 when they do."""

    key: str
    stamp_ms: int
    ttl: int
    keep: int
    max_mean_seconds: float
    max_cv: float


@dataclass(frozen=True, slots=True)
class Add:
    """Adds ``member`` to the set (``LimitOps.add``); stops when refused by the cap (a ``cap``
    of ``None`` never refuses), or when the set has grown to ``stop_at``; value: its size."""

    key: str
    member: str
    ttl: int
    cap: int | None = None
    stop_at: int | None = None


@dataclass(frozen=True, slots=True)
class Slide:
    """Adds ``member`` to the sliding set (``LimitOps.slide``); stops when the set holds
    ``stop_at`` members added in the last ``ttl`` seconds; value: that size."""

    key: str
    member: str
    ttl: int
    stop_at: int


@dataclass(frozen=True, slots=True)
class AddAll:
    """Adds every member or none (``LimitOps.add_all``); stops when refused; value: the size."""

    key: str
    members: tuple[str, ...]
    ttl: int
    cap: int


Step = Ttl | Incr | Timing | Add | Slide | AddAll


@dataclass(frozen=True, slots=True)
class Gate:
    """What a gate did: the index of the step that stopped it (``None``: all passed), and each
    run step's value."""

    stopped: int | None
    values: tuple[int, ...]


def machine_like(stamps: Sequence[int], keep: int, max_mean: float, max_cv: float) -> bool:
    """Whether the latest ``keep`` stamps (ms, newest first) are evenly spaced and quick: their
    intervals vary by less than ``max_cv`` of a mean under ``max_mean`` seconds."""
    if len(stamps) < max(keep, 2):
        return False
    gaps = [(a - b) / 1000 for a, b in itertools.pairwise(stamps)]
    mean = statistics.fmean(gaps)
    if mean <= 0 or mean > max_mean:
        return False
    return statistics.pstdev(gaps) / mean < max_cv


def run_gate(ops: LimitOps, steps: Sequence[Step], now: datetime) -> Gate:
    """Run ``steps`` in order with the store's single operations, stopping at the first that
    fails (what a store without a script of its own does)."""
    values: list[int] = []
    for index, step in enumerate(steps):
        stop = False
        match step:
            case Ttl():
                value = ops.ttl(step.key, now)
                stop = value > 0
            case Incr():
                value = ops.incr(step.key, step.ttl, now, by=step.by)
                stop = value > step.limit
            case Timing():
                stamps = ops.recent(step.key, step.stamp_ms, step.ttl, step.keep, now)
                stop = machine_like(stamps, step.keep, step.max_mean_seconds, step.max_cv)
                value = int(stop)
            case Add():
                value, admitted = ops.add(step.key, step.member, step.ttl, now, step.cap)
                stop = not admitted or (step.stop_at is not None and value >= step.stop_at)
            case Slide():
                value = ops.slide(step.key, step.member, step.ttl, now)
                stop = value >= step.stop_at
            case AddAll():
                value, admitted = ops.add_all(step.key, step.members, step.ttl, now, step.cap)
                stop = not admitted
        values.append(value)
        if stop:
            return Gate(index, tuple(values))
    return Gate(None, tuple(values))


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

    def slide(self, key: str, member: str, ttl: int, now: datetime) -> int:
        """Add (or refresh) ``member``, to fall out ``ttl`` seconds from ``now``; return how many
        members have not fallen out."""
        ...

    def recent(self, key: str, stamp_ms: int, ttl: int, keep: int, now: datetime) -> list[int]:
        """Record a time stamp; return up to ``keep`` latest stamps, newest first."""
        ...

    def gate(self, steps: Sequence[Step], now: datetime) -> Gate:
        """Run ``steps`` in order until one stops (``run_gate``), at once where the store can."""
        ...


class LimitStore(Protocol):
    name: str

    def open(self) -> AbstractContextManager[LimitOps]: ...


class MemoryOps:
    """Process-local state: only for one process (the demo), never for several workers."""

    def __init__(self) -> None:
        self.counters: dict[str, tuple[int, datetime]] = {}
        self.sets: dict[str, tuple[set[str], datetime]] = {}
        self.slides: dict[str, dict[str, datetime]] = {}
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

    def slide(self, key: str, member: str, ttl: int, now: datetime) -> int:
        held = {m: until for m, until in self.slides.get(key, {}).items() if until > now}
        held[member] = now + timedelta(seconds=ttl)
        self.slides[key] = held
        return len(held)

    def recent(self, key: str, stamp_ms: int, ttl: int, keep: int, now: datetime) -> list[int]:
        stamps, _ = self.streams.get(key, ([], now))
        horizon = stamp_ms - ttl * 1000
        stamps = [*[s for s in stamps if s > horizon][-(keep - 1) :], stamp_ms]
        self.streams[key] = (stamps, now + timedelta(seconds=ttl))
        return sorted(stamps, reverse=True)

    def gate(self, steps: Sequence[Step], now: datetime) -> Gate:
        return run_gate(self, steps, now)


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

    def slide(self, key: str, member: str, ttl: int, now: datetime) -> int:
        stmt = self.insert(LimitMember.__table__).values(
            key=key, member=member, expires_at=now + timedelta(seconds=ttl)
        )
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key", "member"], set_={"expires_at": stmt.excluded.expires_at}
            )
        )
        return int(self.conn.execute(select(func.count()).where(self._live(key, now))).scalar_one())

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

    def gate(self, steps: Sequence[Step], now: datetime) -> Gate:
        return run_gate(self, steps, now)

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
    """Counters, sets and sorted sets in Redis; the capped adds and the gate are one Lua script
    (atomic)."""

    # ``run_gate`` as one script: KEYS[i] is step i's key, ARGV[1] the steps as JSON arrays
    # (numbers that must stay exact, time stamps, as strings). Returns the stopping step's index
    # (-1: none) followed by the values. The same operations as the methods below.
    _GATE = """
    local steps = cjson.decode(ARGV[1])
    local values = {}
    local function stop(i) return {i - 1, unpack(values)} end
    for i, s in ipairs(steps) do
        local k, op = KEYS[i], s[1]
        if op == 'ttl' then
            local left = redis.call('PTTL', k)
            local secs = 0
            if left > 0 then secs = math.floor((left + 999) / 1000) end
            values[i] = secs
            if secs > 0 then return stop(i) end
        elseif op == 'incr' then
            local count = redis.call('INCRBY', k, s[4])
            redis.call('EXPIRE', k, s[2], 'NX')
            values[i] = count
            if count > s[3] then return stop(i) end
        elseif op == 'timing' then
            local stamp, ttl, keep = tonumber(s[2]), s[3], s[4]
            redis.call('ZADD', k, stamp, s[2])
            redis.call('ZREMRANGEBYRANK', k, 0, -(keep + 1))
            redis.call('ZREMRANGEBYSCORE', k, '-inf', stamp - ttl * 1000)
            redis.call('EXPIRE', k, ttl)
            local stamps = redis.call('ZREVRANGE', k, 0, keep - 1)
            local machine = 0
            if #stamps >= keep and keep > 1 then
                local gaps, sum = {}, 0
                for j = 1, #stamps - 1 do
                    gaps[j] = (tonumber(stamps[j]) - tonumber(stamps[j + 1])) / 1000
                    sum = sum + gaps[j]
                end
                local mean = sum / #gaps
                if mean > 0 and mean <= s[5] then
                    local var = 0
                    for j = 1, #gaps do var = var + (gaps[j] - mean) ^ 2 end
                    if math.sqrt(var / #gaps) / mean < s[6] then machine = 1 end
                end
            end
            values[i] = machine
            if machine == 1 then return stop(i) end
        elseif op == 'add' then
            local member, ttl, cap, stop_at = s[2], s[3], s[4], s[5]
            local present = redis.call('SISMEMBER', k, member)
            local size = redis.call('SCARD', k)
            if present == 0 and cap >= 0 and size >= cap then
                values[i] = size
                return stop(i)
            end
            if present == 0 then
                redis.call('SADD', k, member)
                size = size + 1
                if size == 1 then redis.call('EXPIRE', k, ttl) end
            end
            values[i] = size
            if stop_at >= 0 and size >= stop_at then return stop(i) end
        elseif op == 'slide' then
            local member, ttl, now_ms, stop_at = s[2], s[3], tonumber(s[4]), s[5]
            redis.call('ZREMRANGEBYSCORE', k, '-inf', now_ms)
            redis.call('ZADD', k, now_ms + ttl * 1000, member)
            redis.call('PEXPIRE', k, ttl * 1000)
            local size = redis.call('ZCARD', k)
            values[i] = size
            if size >= stop_at then return stop(i) end
        elseif op == 'add_all' then
            local ttl, cap = s[2], s[3]
            local size = redis.call('SCARD', k)
            local new = 0
            for j = 4, #s do
                if redis.call('SISMEMBER', k, s[j]) == 0 then new = new + 1 end
            end
            if size + new > cap then
                values[i] = size
                return stop(i)
            end
            if new > 0 then
                redis.call('SADD', k, unpack(s, 4))
                if size == 0 then redis.call('EXPIRE', k, ttl) end
            end
            values[i] = size + new
        end
    end
    return {-1, unpack(values)}
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._gate = client.register_script(self._GATE)

    def gate(self, steps: Sequence[Step], now: datetime) -> Gate:
        if not steps:
            return Gate(None, ())
        encoded: list[list[Any]] = []
        for step in steps:
            match step:
                case Ttl():
                    encoded.append(["ttl"])
                case Incr():
                    encoded.append(["incr", step.ttl, step.limit, step.by])
                case Timing():
                    encoded.append(
                        [
                            "timing",
                            str(step.stamp_ms),
                            step.ttl,
                            step.keep,
                            step.max_mean_seconds,
                            step.max_cv,
                        ]
                    )
                case Add():
                    cap = -1 if step.cap is None else step.cap
                    stop_at = -1 if step.stop_at is None else step.stop_at
                    encoded.append(["add", step.member, step.ttl, cap, stop_at])
                case Slide():
                    now_ms = str(int(now.timestamp() * 1000))
                    encoded.append(["slide", step.member, step.ttl, now_ms, step.stop_at])
                case AddAll():
                    encoded.append(["add_all", step.ttl, step.cap, *sorted(set(step.members))])
        reply = self._gate(
            keys=[self.prefix + step.key for step in steps],
            args=[json.dumps(encoded, separators=(",", ":"))],
        )
        stopped = int(reply[0])
        return Gate(None if stopped < 0 else stopped, tuple(int(v) for v in reply[1:]))

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
        gate = self.gate([Add(key, member, ttl, cap)], now)  # the gate's script, one step
        return gate.values[0], gate.stopped is None

    def add_all(
        self, key: str, members: Sequence[str], ttl: int, now: datetime, cap: int
    ) -> tuple[int, bool]:
        wanted = sorted(set(members))
        if not wanted:
            return self.client.scard(self.prefix + key), True
        gate = self.gate([AddAll(key, tuple(wanted), ttl, cap)], now)
        return gate.values[0], gate.stopped is None

    def slide(self, key: str, member: str, ttl: int, now: datetime) -> int:
        # The gate's script, one step; a threshold never reached, so it only counts.
        return self.gate([Slide(key, member, ttl, 2**31)], now).values[0]

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

    def __init__(self, url: str, prefix: str = "cp:limits:", *, timeout: float = 1.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # Bounded: a refused, dropped or stalled Redis raises within about twice ``timeout``
        # (one retry, on a fresh connection, covers a restart that left pooled ones stale), and
        # the request is answered 503 (kit.faults): limits are never skipped.
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        self.prefix = prefix
        self._ops = RedisOps(self.client, prefix)

    def check_writable(self, token: str) -> None:
        """Write a key that expires by itself (readiness): raises when Redis cannot take it."""
        self.client.set(f"{self.prefix}ready:{token}", "1", ex=10)

    @contextmanager
    def open(self) -> Iterator[LimitOps]:
        yield self._ops
