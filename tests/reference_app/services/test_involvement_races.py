"""An involvement's own steps move it on from the state read: ending it, changing it or recording
a withdrawal after someone else ended it (or recorded the withdrawal) is refused with 409
``state_changed`` and recorded once; an ended involvement is never made lead again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.kit.http import Call
from reference_app.services import service
from reference_app.services.models import Involvement, OrganisationKind
from tests.fixtures.stale import principal_of, read, refused, stale_call
from tests.fixtures.world import LA_A, World

SEXUAL_HEALTH = OrganisationKind.SEXUAL_HEALTH_SERVICE


def _end(call: Call, who: Any, involvement: int) -> Involvement:
    return service.end(call, who, involvement, None)


def _make_lead(call: Call, who: Any, involvement: int) -> Involvement:
    return service.update(call, who, involvement, lead_professional=True, caf_assessment_on=None)


STEPS: dict[str, tuple[Callable[..., Involvement], str]] = {
    # the stale step: (the step, what another request did meanwhile)
    "end": (_end, "end"),
    "make-lead": (_make_lead, "end"),
    "withdraw-consent": (service.withdraw_consent, "withdraw-consent"),
}


@pytest.mark.parametrize("name", list(STEPS))
def test_an_involvement_step_from_a_state_changed_since_it_was_read_is_refused(
    world: World, name: str
) -> None:
    stale_step, meanwhile = STEPS[name]
    owner = world.new_account(Role.HEALTH_PRACTITIONER, LA_A, kind=SEXUAL_HEALTH)
    child = world.child()
    involvement = world.involve(child, SEXUAL_HEALTH, practitioner=owner)
    with stale_call(world) as call:
        seen = read(call, lambda c: c.db.get(Involvement, involvement))  # held: mapped weakly
        assert seen.ended_on is None
        done = world.client.post(
            f"/api/v1/involvements/{involvement}/{meanwhile}", json={}, headers=world.login(owner)
        )
        assert done.status_code == 200, done.text
        who = principal_of(world, owner)
        assert refused(call, stale_step, who, involvement) == (409, "state_changed")
    query = select(AuditEvent.tag).where(AuditEvent.child_id == child.id)
    with world.ctx.sessions() as db:
        tags = list(db.scalars(query))
        stored = db.get(Involvement, involvement)
    assert len([t for t in tags if t.startswith("involvement:")]) == 1, tags
    assert stored is not None
    assert stored.is_lead_professional is False
