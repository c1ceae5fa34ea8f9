"""Dependency faults (kit.faults and the middleware): which errors mean a store is unavailable,
a 503 that names no store, a count per dependency, a request deadline, and tracebacks at most
once a minute per kind."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import psycopg
import pytest
import redis.exceptions
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from reference_app.app import create_app
from reference_app.kit import faults
from reference_app.kit.faults import Dependency, classify
from tests.fixtures.world import World


def _db(orig: Exception) -> OperationalError:
    """The driver's error as SQLAlchemy raises it."""
    return OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("exc", "dependency"),
    [
        (
            OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked")),
            "database",
        ),
        (
            OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
            "database",
        ),
        (OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")), None),
        (
            OperationalError("SELECT", {}, psycopg.errors.QueryCanceled("statement timeout")),
            "database",
        ),
        (OperationalError("connect", {}, psycopg.OperationalError("too many clients")), "database"),
        (PoolTimeout("QueuePool limit reached"), "database"),
        (IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")), None),
        (redis.exceptions.ConnectionError("refused"), "limits"),
        (redis.exceptions.TimeoutError("timed out"), "limits"),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), "limits"),
        (redis.exceptions.ResponseError("script error"), None),
        (ValueError("ours"), None),
    ],
)
def test_classify(exc: Exception, dependency: str | None) -> None:
    got = classify(exc)
    assert (got.value if got else None) == dependency


def test_a_traceback_once_a_minute_per_kind_and_place() -> None:
    err = redis.exceptions.ConnectionError("refused")
    where = "test-place"
    assert faults.should_trace(where, err, now=1000.0)
    assert not faults.should_trace(where, redis.exceptions.ConnectionError("again"), now=1030.0)
    assert faults.should_trace(where, ValueError("another kind"), now=1030.0)
    assert faults.should_trace("elsewhere", err, now=1030.0)
    assert faults.should_trace(where, err, now=1061.0)


def test_a_limits_store_down_is_a_503_that_names_no_store_and_is_counted(world: World) -> None:
    app = create_app(world.ctx)

    @app.get("/redis-down")
    def redis_down() -> None:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.7:6379.")

    before = faults.refusals().get("limits", 0)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/redis-down")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert "redis" not in response.text.lower()
    assert "10.0.0.7" not in response.text
    assert faults.refusals()["limits"] == before + 1


def test_a_request_past_its_deadline_is_answered_503(world: World) -> None:
    settings = world.ctx.settings.model_copy(update={"request_deadline_seconds": 0.2})
    app = create_app(dataclasses.replace(world.ctx, settings=settings))

    @app.get("/stuck")
    async def stuck() -> None:
        await asyncio.sleep(30)

    before = faults.refusals().get(Dependency.DEADLINE.value, 0)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/stuck")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert faults.refusals()[Dependency.DEADLINE.value] == before + 1
