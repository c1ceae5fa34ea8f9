"""The limit stores: the same answers from memory, the database and Redis, and one shared count
across workers for the shared ones."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reference_app.kit.db import make_engine
from reference_app.limits.store import (
    Add,
    AddAll,
    DatabaseStore,
    Gate,
    Incr,
    LimitStore,
    MemoryStore,
    RedisStore,
    Slide,
    Step,
    Timing,
    Ttl,
)
from tests.fixtures.database import Database


def _redis(request: pytest.FixtureRequest) -> RedisStore:
    """A store on the session's Redis (``tests.fixtures.services``), under a prefix of its own."""
    url = request.getfixturevalue("redis_service")
    return RedisStore(url, prefix=f"cp-test-{secrets.token_hex(4)}:")


@pytest.fixture(params=["memory", "database", "redis"])
def store(request: pytest.FixtureRequest, database: Database) -> Iterator[LimitStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "redis":
        yield _redis(request)
    else:
        engine = make_engine(database.app_url, pool_size=2)
        yield DatabaseStore(engine)
        engine.dispose()


NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def key() -> str:
    return f"k:{secrets.token_hex(6)}"


def test_a_counter_counts_and_expires(store: LimitStore) -> None:
    k = key()
    with store.open() as ops:
        assert [ops.incr(k, 60, NOW) for _ in range(3)] == [1, 2, 3]
        assert ops.incr(k, 60, NOW, by=10) == 13
        assert 0 < ops.ttl(k, NOW) <= 60
    if store.name == "redis":
        return  # Redis expires by its own clock; the expiry below is the stores' own logic
    later = NOW + timedelta(seconds=61)
    with store.open() as ops:
        assert ops.ttl(k, later) == 0
        assert ops.incr(k, 60, later) == 1


def test_a_capped_set_admits_members_already_in_it(store: LimitStore) -> None:
    k = key()
    with store.open() as ops:
        assert [ops.add(k, m, 3600, NOW, cap=3) for m in "abc"] == [
            (1, True),
            (2, True),
            (3, True),
        ]
        assert ops.add(k, "d", 3600, NOW, cap=3) == (3, False)
        assert ops.add(k, "a", 3600, NOW, cap=3) == (3, True)
        assert ops.add(k, "d", 3600, NOW) == (4, True)


def test_a_sliding_set_lets_each_member_fall_out_an_hour_after_it_was_last_added(
    store: LimitStore,
) -> None:
    k = key()
    minute = timedelta(minutes=1)
    with store.open() as ops:
        assert ops.slide(k, "a", 3600, NOW) == 1
        assert ops.slide(k, "b", 3600, NOW + 30 * minute) == 2
        # At 9:59 both are in; a fixed clock-hour window would start again at 10:00.
        assert ops.slide(k, "c", 3600, NOW + 59 * minute) == 3
        assert ops.slide(k, "d", 3600, NOW + 61 * minute) == 3  # "a" fell out at 10:00
        assert ops.slide(k, "b", 3600, NOW + 62 * minute) == 3  # refreshed, not counted twice
        assert ops.slide(k, "e", 3600, NOW + 120 * minute) == 3  # "b" now lives to 11:02
        assert ops.slide(k, "f", 3600, NOW + 300 * minute) == 1
        assert ops.gate([Slide(k, "g", 3600, stop_at=3)], NOW + 300 * minute) == Gate(None, (2,))
        assert ops.gate([Slide(k, "h", 3600, stop_at=3)], NOW + 301 * minute) == Gate(0, (3,))


def test_recent_keeps_the_latest_stamps(store: LimitStore) -> None:
    k = key()
    with store.open() as ops:
        for stamp in range(1000, 1010):
            got = ops.recent(k, stamp, 600, 4, NOW)
    assert got == [1009, 1008, 1007, 1006]


# PostgreSQL only: a SQLite deployment is one process and keeps its limits in memory.
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.parametrize("backend", ["database", "redis"])
def test_two_workers_share_one_count(
    backend: str, database: Database, request: pytest.FixtureRequest
) -> None:
    """Eight threads on two separate stores (two workers) add up to one exact total."""
    if backend == "redis":
        first = _redis(request)
        second = RedisStore(request.getfixturevalue("redis_service"), prefix=first.prefix)
        stores: list[LimitStore] = [first, second]
    else:
        engines = [make_engine(database.app_url, pool_size=4) for _ in range(2)]
        stores = [DatabaseStore(e) for e in engines]
    k = key()

    def hammer(s: LimitStore) -> None:
        for _ in range(25):
            with s.open() as ops:
                ops.incr(k, 60, NOW)

    threads = [threading.Thread(target=hammer, args=(stores[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stores[0].open() as ops:
        total = ops.incr(k, 60, NOW)
    for s in stores:
        if isinstance(s, DatabaseStore):
            s.engine.dispose()
    assert total == 201


def test_counts_made_before_a_refusal_are_kept(store: LimitStore) -> None:
    """A limit raises its refusal inside the store's transaction; the count must survive it."""
    k = key()

    def count_then_refuse() -> None:
        with store.open() as ops:
            ops.incr(k, 60, NOW)
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        count_then_refuse()
    with store.open() as ops:
        assert ops.incr(k, 60, NOW) == 2


def test_add_all_admits_all_or_none(store: LimitStore) -> None:
    k = key()
    with store.open() as ops:
        assert ops.add_all(k, ["a", "b", "c"], 3600, NOW, cap=4) == (3, True)
        # Members already in the set cost nothing; two new ones would make five.
        assert ops.add_all(k, ["a", "d", "e"], 3600, NOW, cap=4) == (3, False)
        assert ops.add_all(k, ["a", "b", "d"], 3600, NOW, cap=4) == (4, True)
        assert ops.add_all(k, ["a", "a", "c"], 3600, NOW, cap=4) == (4, True)
        assert ops.add(k, "e", 3600, NOW, cap=4) == (4, False)
    if store.name == "redis":
        return  # Redis expires by its own clock
    later = NOW + timedelta(seconds=3601)
    with store.open() as ops:
        assert ops.add_all(k, ["x", "y"], 3600, later, cap=2) == (2, True)


# -- the gate: a request's checks in one pass ----------------------------------------------


def test_a_gate_runs_its_steps_in_order_and_stops_at_the_first_that_fails(
    store: LimitStore,
) -> None:
    block, rate, seen, team = key(), key(), key(), key()
    steps: list[Step] = [
        Ttl(block),
        Incr(rate, 60, limit=2),
        Add(seen, "child-a", 3600, cap=2),
        AddAll(team, ("child-a", "child-b"), 3600, cap=3),
    ]
    with store.open() as ops:
        assert ops.gate(steps, NOW) == Gate(None, (0, 1, 1, 2))
        assert ops.gate(steps, NOW) == Gate(None, (0, 2, 1, 2))
        # The rate's third request stops the gate: the sets are not touched.
        assert ops.gate(steps, NOW) == Gate(1, (0, 3))
        assert ops.add(seen, "child-z", 3600, NOW) == (2, True)
        ops.incr(block, 60, NOW)
        stopped = ops.gate(steps, NOW)
        assert stopped.stopped == 0
        assert 0 < stopped.values[0] <= 60


def test_a_gate_stops_at_a_full_set_and_at_a_threshold(store: LimitStore) -> None:
    capped, counted, shared = key(), key(), key()
    with store.open() as ops:
        for member in ("a", "b"):
            ops.add(capped, member, 3600, NOW)
        assert ops.gate([Add(capped, "c", 3600, cap=2)], NOW) == Gate(0, (2,))
        assert ops.gate([Add(capped, "a", 3600, cap=2)], NOW) == Gate(None, (2,))
        assert ops.gate([Add(counted, "x", 3600, stop_at=2)], NOW) == Gate(None, (1,))
        assert ops.gate([Add(counted, "y", 3600, stop_at=2)], NOW) == Gate(0, (2,))
        assert ops.gate([AddAll(shared, ("p", "q", "r"), 3600, cap=2)], NOW) == Gate(0, (0,))
        assert ops.gate([AddAll(shared, ("p", "q"), 3600, cap=2)], NOW) == Gate(None, (2,))


def test_a_gate_tells_machine_timing_from_a_person(store: LimitStore) -> None:
    machine, person = key(), key()
    keep, start = 5, int(NOW.timestamp() * 1000)
    with store.open() as ops:
        for i in range(keep):  # every 2.000 s
            got = ops.gate([Timing(machine, start + 2000 * i, 600, keep, 20.0, 0.15)], NOW)
        assert got == Gate(0, (1,))
        for i, gap in enumerate((0, 1500, 5000, 900, 7000)):  # as a person clicks
            got = ops.gate([Timing(person, start + gap + 10_000 * i, 600, keep, 20.0, 0.15)], NOW)
        assert got == Gate(None, (0,))


def test_a_redis_gate_is_one_round_trip(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    store = _redis(request)
    sent: list[str] = []
    execute = store.client.execute_command

    def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return execute(*args, **kwargs)

    monkeypatch.setattr(store.client, "execute_command", counted)
    start = int(NOW.timestamp() * 1000)
    steps: list[Step] = [
        Ttl(key()),
        Incr(key(), 60, 10),
        Timing(key(), start, 600, 20, 20.0, 0.15),
        Add(key(), "m", 3600, cap=5),
        AddAll(key(), ("m", "n"), 3600, cap=5),
        AddAll(key(), ("m", "n"), 3600, cap=5),
    ]
    with store.open() as ops:
        sent.clear()
        assert ops.gate(steps, NOW).stopped is None
    assert sent == ["EVALSHA"]
