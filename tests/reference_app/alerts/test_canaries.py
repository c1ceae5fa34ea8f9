"""Canary children: any view raises a canary_access alert at once; a weakened build misses it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from reference_app.access.permissions import Role
from reference_app.alerts.models import Canary
from reference_app.config import Environment, Settings
from reference_app.kit.controls import Control
from tests.fixtures.world import LA_A, LA_B, ChildInfo, World


def make_canary(world: World, la: str = LA_A) -> ChildInfo:
    child = world.child(la)
    with world.ctx.sessions() as db, db.begin():
        db.add(Canary(child_id=child.id, registered_at=datetime.now(UTC)))
    return child


def canary_alerts(world: World, child_id: str, la: str = LA_A) -> list[dict[str, Any]]:
    alerts = world.client.get(
        "/api/v1/alerts", params={"limit": 500}, headers=world.headers(Role.LA_DATA_MANAGER, la)
    ).json()
    return [a for a in alerts if a["kind"] == "canary_access" and a["child_id"] == child_id]


def view(world: World, child_id: str, role: Role, la: str) -> int:
    headers = {**world.headers(role, la), "X-Access-Reason": "safeguarding"}
    return world.client.get(f"/api/v1/children/{child_id}", headers=headers).status_code


def test_viewing_a_canary_alerts_its_la_at_once_with_references_only(world: World) -> None:
    child = make_canary(world, LA_A)
    canary = child.id
    # A practitioner of another LA browsing: the answer looks like any other record.
    assert view(world, canary, Role.HEALTH_PRACTITIONER, LA_B) == 200
    [alert] = canary_alerts(world, canary)
    assert alert["severity"] == "critical"
    assert alert["status"] == "open"
    assert alert["subject_user_id"] == world.accounts[(Role.HEALTH_PRACTITIONER, LA_B)].id
    assert alert["child_id"] == canary  # a reference, not the child's personal data
    assert "honeytoken" in alert["summary"]
    assert child.family_name not in str(alert)
    assert child.given_name not in str(alert)


def test_an_ordinary_record_raises_no_canary_alert(world: World) -> None:
    ordinary = world.child(LA_A).id
    assert view(world, ordinary, Role.HEALTH_PRACTITIONER, LA_B) == 200
    assert canary_alerts(world, ordinary) == []


def test_with_canary_alerts_switched_off_the_snooper_goes_unnoticed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    weakened = world.ctx.settings.model_copy(
        update={
            "environment": Environment.DEVELOPMENT,
            "disabled_controls": frozenset({Control.CANARY_ALERTS}),
        }
    )
    monkeypatch.setattr(world.ctx, "settings", weakened)
    canary = make_canary(world, LA_A).id
    assert view(world, canary, Role.EDUCATION_PRACTITIONER, LA_B) == 200
    assert canary_alerts(world, canary) == []


@pytest.mark.parametrize("environment", [Environment.PRODUCTION, Environment.TEST])
def test_controls_cannot_be_switched_off_outside_development(environment: Environment) -> None:
    with pytest.raises(ValidationError, match="only in a development build"):
        Settings(environment=environment, disabled_controls=frozenset({Control.CANARY_ALERTS}))
    assert Settings(
        environment=Environment.DEVELOPMENT, disabled_controls=frozenset({Control.CANARY_ALERTS})
    ).disabled_controls == {Control.CANARY_ALERTS}


def test_the_switch_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "production")
    monkeypatch.setenv("CONTACTPOINT_DISABLED_CONTROLS", '["canary_alerts"]')
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "development")
    assert Control.CANARY_ALERTS in Settings().disabled_controls
