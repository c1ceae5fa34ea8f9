"""Withdrawn consent and ended involvements: other services stop seeing them; the service itself
still does (and the child's LA data manager an ended one). Switched off
(``consent_withdrawal``), nothing changes for the other services."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.audit.tags import EventTag
from reference_app.kit.controls import Control
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, LA_B, Account, World, strict_world

SEXUAL_HEALTH = OrganisationKind.SEXUAL_HEALTH_SERVICE


def shown(world: World, child_id: str, headers: dict[str, str]) -> list[int]:
    response = world.client.get(
        f"/api/v1/children/{child_id}",
        headers={**headers, "X-Access-Reason": "service_delivery"},
    )
    assert response.status_code == 200, response.text
    return [s["involvement_id"] for s in response.json().get("services", [])]


def clinic(world: World, la: str = LA_A) -> Account:
    return world.new_account(Role.HEALTH_PRACTITIONER, la, kind=SEXUAL_HEALTH)


def withdraw(world: World, involvement: int, headers: dict[str, str]) -> Any:
    return world.client.post(
        f"/api/v1/involvements/{involvement}/withdraw-consent", headers=headers
    )


def test_the_service_withdraws_consent_and_other_services_stop_seeing_it(world: World) -> None:
    child = world.child()
    member = clinic(world)
    involvement = world.involve(child, SEXUAL_HEALTH, practitioner=member, consent=True)
    colleague = world.headers(Role.EDUCATION_PRACTITIONER)
    assert involvement in shown(world, child.id, colleague)
    response = withdraw(world, involvement, world.login(member))
    assert response.status_code == 200
    assert response.json()["consent_withdrawn_at"] is not None
    assert involvement not in shown(world, child.id, colleague)
    # The service itself still sees it; the LA's data manager no longer does.
    assert involvement in shown(world, child.id, world.login(clinic(world)))
    assert involvement not in shown(world, child.id, world.headers(Role.LA_DATA_MANAGER))
    with world.ctx.sessions() as db:
        tags = db.scalars(select(AuditEvent.tag).where(AuditEvent.child_id == child.id)).all()
    assert EventTag.INVOLVEMENT_CONSENT_WITHDRAWN in tags


def test_the_childs_data_manager_may_record_the_withdrawal(world: World) -> None:
    child = world.child()
    involvement = world.involve(child, SEXUAL_HEALTH, consent=True)
    response = withdraw(world, involvement, world.headers(Role.LA_DATA_MANAGER))
    assert response.status_code == 200
    assert involvement not in shown(world, child.id, world.headers(Role.HEALTH_PRACTITIONER))
    again = withdraw(world, involvement, world.headers(Role.LA_DATA_MANAGER))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "consent_already_withdrawn"


def test_no_one_else_may_withdraw(world: World) -> None:
    child = world.child()
    involvement = world.involve(child, SEXUAL_HEALTH, consent=True)
    # Another's involvement answers as a missing one (uniform refusals): no existence oracle.
    other_service = withdraw(world, involvement, world.headers(Role.HEALTH_PRACTITIONER))
    assert other_service.status_code == 404
    assert other_service.json()["error"]["code"] == "involvement_not_found"
    other_la = withdraw(world, involvement, world.headers(Role.LA_DATA_MANAGER, LA_B))
    assert other_la.status_code == 404
    no_permission = withdraw(world, involvement, world.headers(Role.SYSTEM_ADMINISTRATOR))
    assert no_permission.status_code == 403
    assert no_permission.json()["error"]["code"] == "permission_denied"
    assert involvement in shown(world, child.id, world.headers(Role.EDUCATION_PRACTITIONER))


def test_consent_is_withdrawn_only_from_a_sensitive_service(world: World) -> None:
    child = world.child()
    involvement = world.involve(child, OrganisationKind.GP_PRACTICE)
    response = withdraw(world, involvement, world.headers(Role.LA_DATA_MANAGER))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_sensitive"
    assert withdraw(world, 10**9, world.headers(Role.LA_DATA_MANAGER)).status_code == 404


def test_an_ended_involvement_is_shown_only_to_its_service_and_the_data_manager(
    world: World,
) -> None:
    child = world.child()
    school = world.involve(child, OrganisationKind.SCHOOL, ended=True)
    current = world.involve(child, OrganisationKind.GP_PRACTICE)
    other = shown(world, child.id, world.headers(Role.HEALTH_PRACTITIONER))
    assert current in other
    assert school not in other
    assert school in shown(world, child.id, world.headers(Role.EDUCATION_PRACTITIONER))
    assert school in shown(world, child.id, world.headers(Role.LA_DATA_MANAGER))


def test_switched_off_withdrawn_and_ended_involvements_stay_visible(world: World) -> None:
    child = world.child()
    involvement = world.involve(child, SEXUAL_HEALTH, consent=True)
    never = world.involve(child, OrganisationKind.MENTAL_HEALTH_SERVICE, consent=False)
    school = world.involve(child, OrganisationKind.SCHOOL, ended=True)
    assert withdraw(world, involvement, world.headers(Role.LA_DATA_MANAGER)).status_code == 200
    with strict_world(world, off=[Control.CONSENT_WITHDRAWAL]) as weak:
        headers = weak.login(weak.new_account(Role.HEALTH_PRACTITIONER))
        seen = shown(weak, child.id, headers)
    assert involvement in seen
    assert school in seen
    assert never not in seen  # consent never given still hides a sensitive service
