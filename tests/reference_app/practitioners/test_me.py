"""``GET /auth/me``: any signed-in user reads their own account, and only their own."""

from __future__ import annotations

import pytest

from reference_app.access.permissions import Role
from reference_app.localauthorities.catalogue import by_code
from tests.fixtures.world import LA_A, LA_B, World

ME = "/api/v1/auth/me"


@pytest.mark.parametrize("la", [LA_A, LA_B])
@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_its_own_account(world: World, role: Role, la: str) -> None:
    account = world.accounts[(role, la)]
    response = world.client.get(ME, headers=world.headers(role, la))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": account.id,
        "username": account.username,
        "role": role.value,
        "role_pending": False,
        "organisation_id": account.organisation_id,
        "local_authority_id": world.la_ids[la],
        "local_authority": {"code": la, "name": by_code()[la].name},
    }


def test_me_needs_a_live_session(world: World) -> None:
    assert world.client.get(ME).status_code == 401
    headers = world.login(world.new_account(Role.HEALTH_PRACTITIONER))
    assert world.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    response = world.client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_ended"
