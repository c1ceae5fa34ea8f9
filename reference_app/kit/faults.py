"""Dependency faults: which failures mean a store is unavailable, how they are logged, and how
many requests each has refused.

A dependency that is down, slow, locked or full is answered 503 ``dependency_unavailable``
with a ``Retry-After`` (``kit.middleware``); the caller is never told which one. The operator
is: ``/readyz`` names it, every refused request logs one line naming it, and the first
occurrence of each distinct error in a minute logs its traceback (a store down for an hour
must not fill the disk with identical traces).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from enum import StrEnum

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("contactpoint")

CODE = "dependency_unavailable"
MESSAGE = "A service the registry depends on is unavailable; try again shortly."
RETRY_AFTER_SECONDS = 2


class Dependency(StrEnum):
    """What refused: the registry's database, the limits store (Redis), or nothing answering
    within the request's deadline."""

    DATABASE = "database"
    LIMITS = "limits"
    DEADLINE = "deadline"


class DependencyUnavailable(Exception):
    """Raised where a dependency is known to be unavailable (e.g. a failed readiness write)."""

    def __init__(self, dependency: Dependency, detail: str = "") -> None:
        self.dependency = dependency
        super().__init__(f"{dependency.value} unavailable{': ' + detail if detail else ''}")


def _redis_errors() -> tuple[type[BaseException], ...]:
    """Redis refusing, dropping or timing out a connection, or a replica refusing writes (a
    script's own error is a fault of ours, not an outage)."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import ReadOnlyError
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover (redis is a dependency of the registry)
        return ()
    return (RedisConnectionError, RedisTimeout, ReadOnlyError)


_REDIS = _redis_errors()
# SQLite's errors that mean the file cannot be written now, not that a statement is wrong.
_SQLITE_UNAVAILABLE = ("database is locked", "disk is full", "disk i/o error", "readonly")


def classify(exc: BaseException) -> Dependency | None:
    """The dependency ``exc`` says is unavailable, or ``None`` for a fault of the registry's own.

    The database: a dropped or refused connection, a server shutting down or out of
    connections, a statement cancelled by ``statement_timeout``, a pool with no connection to
    give within its timeout, SQLite locked past its busy timeout or on a full disk. Redis: a
    refused, dropped or timed-out connection, or a replica that refuses writes.
    """
    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    if isinstance(exc, PoolTimeout):
        return Dependency.DATABASE
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            if isinstance(exc.orig, sqlite3.OperationalError):
                text = str(exc.orig).lower()
                return Dependency.DATABASE if any(t in text for t in _SQLITE_UNAVAILABLE) else None
            return Dependency.DATABASE
        return None
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return Dependency.DATABASE if any(t in text for t in _SQLITE_UNAVAILABLE) else None
    if _REDIS and isinstance(exc, _REDIS):
        return Dependency.LIMITS
    return None


# -- refusals, for the metrics to come ----------------------------------------------------------

_lock = threading.Lock()
_refused: Counter[str] = Counter()


def count_refusal(dependency: Dependency) -> None:
    with _lock:
        _refused[dependency.value] += 1


def refusals() -> dict[str, int]:
    """Requests this process has answered 503 because of each dependency, since it started."""
    with _lock:
        return dict(_refused)


# -- logging without a flood ---------------------------------------------------------------------

TRACE_INTERVAL_SECONDS = 60.0
_traced: dict[tuple[str, str, str], float] = {}


def _signature(exc: BaseException) -> tuple[str, str]:
    """The kind of an error, without its particulars: its type and its underlying driver
    error's type (never its message, which may carry a statement's parameters)."""
    orig = getattr(exc, "orig", None)
    return type(exc).__qualname__, type(orig).__qualname__ if orig is not None else ""


def should_trace(where: str, exc: BaseException, *, now: float | None = None) -> bool:
    """Whether this error's traceback is due: the first of its kind at ``where`` in a minute."""
    key = (where, *_signature(exc))
    moment = time.monotonic() if now is None else now
    with _lock:
        last = _traced.get(key)
        if last is not None and moment - last < TRACE_INTERVAL_SECONDS:
            return False
        _traced[key] = moment
        return True


def log_unavailable(
    dependency: Dependency, exc: BaseException, *, where: str, request_id: str | None = None
) -> None:
    """One warning line for a dependency failure; its traceback once a minute per kind."""
    kind = ".".join(p for p in _signature(exc) if p)
    subject = f"request {request_id}" if request_id else where
    trace = should_trace(where, exc)
    log.warning(
        "%s unavailable (%s; %s)", dependency.value, kind, subject, exc_info=exc if trace else None
    )
