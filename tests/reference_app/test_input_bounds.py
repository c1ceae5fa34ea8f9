"""Identifiers beyond what the database holds and control characters in names: a clean 422."""

from __future__ import annotations

import pytest

from reference_app.access.permissions import Role
from tests.fixtures.world import LA_A, World

TOO_BIG = str(2**64)
# Fits a 64-bit integer but not PostgreSQL's `integer` keys: the driver refused it (a 500) until
# row identifiers were bounded at 32 bits.
BEYOND_32_BITS = str(2**62)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/alerts/{TOO_BIG}"),
        ("GET", f"/api/v1/exports/{TOO_BIG}"),
        ("GET", f"/api/v1/requests/{TOO_BIG}"),
        ("GET", f"/api/v1/audit/events?actor_id={TOO_BIG}"),
        ("GET", f"/api/v1/audit/events?before_id={TOO_BIG}"),
        ("GET", "/api/v1/alerts/0"),
        ("GET", f"/api/v1/alerts/{BEYOND_32_BITS}"),
        ("GET", f"/api/v1/exports/{BEYOND_32_BITS}"),
        ("POST", f"/api/v1/involvements/{BEYOND_32_BITS}/confirm"),
        ("GET", f"/api/v1/audit/events?actor_id={BEYOND_32_BITS}"),
    ],
)
def test_identifiers_out_of_range_are_refused(world: World, method: str, path: str) -> None:
    response = world.client.request(method, path, headers=world.headers(Role.LA_DATA_MANAGER, LA_A))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("bad", ["Ada\x00", "Ada\x1b[2J", "Ada\nLovelace", "Ada\u202eecalevol"])
def test_control_characters_in_a_name_are_refused(world: World, bad: str) -> None:
    response = world.client.post(
        "/api/v1/children",
        headers=world.headers(Role.LA_DATA_MANAGER, LA_A),
        json={
            "given_name": bad,
            "family_name": "Quorvex",
            "date_of_birth": "2015-03-01",
            "gender": "female",
            "address": {"line1": "1 Row", "town": "Nowhere", "postcode": "QA1 9ZZ"},
        },
    )
    assert response.status_code == 422
    assert "control character" in response.json()["error"]["message"]
