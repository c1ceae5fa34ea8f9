"""A database connection dropped under the registry: the request that meets it is answered 503
(a dependency down, never a 500 or a trace), and the next one is served on a fresh connection.

The pool does not ping before each checkout (a round trip on every request); this is what stands
in for it. PostgreSQL only: a SQLite file has no server to drop a connection.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from reference_app.access.permissions import Role
from tests.fixtures.database import Database
from tests.fixtures.world import PrivateWorld


def _drop_connections(database: Database) -> int:
    """End every other backend connected to the test's own database; how many."""
    url = make_url(database.owner_url)
    name = url.database
    dsn = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_dropped_connection_is_answered_503_and_the_next_request_heals(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    headers = {
        **world.login(world.new_account(Role.SOCIAL_CARE_PRACTITIONER)),
        "X-Access-Reason": "safeguarding",
    }
    url = f"/api/v1/children/{world.child().id}"
    assert world.client.get(url, headers=headers).status_code == 200

    assert _drop_connections(world.database) >= 1
    dropped = world.client.get(url, headers=headers)
    assert dropped.status_code == 503
    body = dropped.json()
    assert body["error"]["code"] == "dependency_unavailable"
    assert int(dropped.headers["retry-after"]) >= 1
    assert "Traceback" not in dropped.text
    assert "psycopg" not in dropped.text

    healed = world.client.get(url, headers=headers)
    assert healed.status_code == 200
    assert healed.json()["child_id"] == url.rsplit("/", 1)[1]
