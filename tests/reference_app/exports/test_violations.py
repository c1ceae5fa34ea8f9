"""Every attempt outside the export rules is refused with its own code, recorded as
export:violation and alerted (export_violation) to the export's LA."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import pytest
from httpx import Response

from reference_app.exports import links
from tests.fixtures.exports import (
    Flow,
    Manager,
    act,
    advance,
    alerts_since,
    events,
    fetch,
    flow,
    involve_at,
    last_alert_id,
    last_event_id,
    manager,
    standing_manager,
    with_settings,
)
from tests.fixtures.world import LA_A, LA_B, World


def refused(
    f: Flow,
    action: Callable[[], Response],
    status: int,
    code: str,
    *,
    by: Manager | None = None,
    names: int | Literal["own"] | None = "own",
) -> dict[str, Any]:
    """Run ``action``; assert it is refused with ``code``, one violation event and one alert to
    the export's LA naming ``by`` (the requester unless given). Return the event."""
    world, subject = f.world, by or f.requester
    alert_mark, event_mark = last_alert_id(world), last_event_id(world)
    response = action()
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    [alert] = alerts_since(world, alert_mark)
    assert alert.subject_user_id == subject.id
    assert alert.local_authority_id == world.la_ids[LA_A]
    assert alert.child_id is None
    assert code in alert.summary
    [event] = events(world, "export:violation", event_mark)
    assert event["actor_id"] == subject.id
    assert event["outcome"] == "denied"
    assert event["details"]["rule"] == code
    assert event["details"]["export_id"] == (f.export_id if names == "own" else names)
    assert alert.audit_event_id == event["id"]
    # Recorded once, as a violation, not again as a plain denial.
    assert events(world, "access:denied", event_mark) == []
    return event


def requested(world: World) -> Flow:
    f = flow(world, 1)
    assert f.request().status_code == 201
    return f


def approved(world: World) -> Flow:
    f = requested(world)
    assert f.approve().status_code == 200
    return f


def linked(world: World) -> Flow:
    f = approved(world)
    assert f.link().status_code == 200
    return f


def status_of(f: Flow) -> str:
    shown = f.world.client.get(f"/api/v1/exports/{f.export_id}", headers=f.requester.headers)
    return str(shown.json()["status"])


def test_a_scope_above_the_cap_is_refused_and_alerted(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = flow(world, 3)
    with_settings(world, monkeypatch, export_max_rows=2)
    mark = last_event_id(world)
    event = refused(f, f.request, 422, "export_too_large", names=None)
    assert (event["details"]["rows"], event["details"]["cap"]) == (3, 2)
    assert events(world, "export:requested", mark) == []


def test_a_scope_that_grew_past_the_cap_after_approval_is_not_served(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = flow(world, 2)
    with_settings(world, monkeypatch, export_max_rows=2)
    f.through_link()
    involve_at(world, world.child(LA_A), f.org_id)
    refused(f, f.download, 422, "export_too_large")
    assert status_of(f) == "approved"


def test_the_requester_can_never_approve(world: World) -> None:
    f = requested(world)
    refused(f, lambda: f.approve(by=f.requester), 403, "export_self_approval")
    assert status_of(f) == "requested"
    assert f.approve().status_code == 200  # a colleague still can


def test_no_link_before_approval(world: World) -> None:
    f = requested(world)
    refused(f, f.link, 403, "export_not_approved")


def test_no_link_for_a_refused_export(world: World) -> None:
    f = requested(world)
    assert act(world, f.approver, f.export_id, "refuse").status_code == 200
    refused(f, f.link, 403, "export_refused")


def test_no_link_for_anyone_but_the_requester(world: World) -> None:
    f = approved(world)
    colleague = manager(world)
    refused(f, lambda: f.link(by=colleague), 403, "export_not_requester", by=colleague)


def test_no_link_once_the_approval_has_expired(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_settings(world, monkeypatch, export_ttl_seconds=60)
    f = approved(world)
    advance(world, monkeypatch, 61)
    refused(f, f.link, 410, "export_expired")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def retarget(token: str, export_id: int) -> str:
    """The same signature over claims edited to name another export."""
    body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["e"] = export_id
    return _b64(json.dumps(claims, separators=(",", ":")).encode()) + "." + signature


# Each tampering: the token made from the requester's link and another export's id, and the
# export the refused token names, if any.
TAMPERINGS: dict[str, Callable[[Flow, int], tuple[str, int | None]]] = {
    "bad_signature": lambda f, _other: (f.token.split(".")[0] + "." + _b64(bytes(32)), f.export_id),
    "claims_edited": lambda f, other: (retarget(f.token, other), other),
    "garbage": lambda f, _other: ("not-a-link", None),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERINGS))
def test_a_tampered_link_is_refused(world: World, tamper: str) -> None:
    f = linked(world)
    other = approved(world)  # an approved export for the edited claims to point at
    token, named = TAMPERINGS[tamper](f, other.export_id)
    refused(f, lambda: f.download(token=token), 403, "export_link_invalid", names=named)


def test_an_expired_link_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    f = linked(world)
    advance(world, monkeypatch, world.ctx.settings.export_link_ttl_seconds + 1)
    refused(f, f.download, 410, "export_link_expired")
    assert f.link().status_code == 200  # a fresh link still works while the approval lives
    assert f.download().status_code == 200


@pytest.mark.parametrize("la", [LA_A, LA_B])
def test_another_manager_holding_the_link_is_refused(world: World, la: str) -> None:
    f = linked(world)
    thief = manager(world, la)
    # The alert goes to the export's LA, whoever tried.
    refused(f, lambda: fetch(world, thief, f.token), 403, "export_not_requester", by=thief)
    assert f.download().status_code == 200  # the requester's own download is unaffected


def test_a_second_download_or_link_is_refused_and_alerted(world: World) -> None:
    f = linked(world)
    assert f.download().status_code == 200
    refused(f, lambda: fetch(world, f.requester, f.token), 410, "export_already_downloaded")
    refused(f, f.link, 410, "export_already_downloaded")


def test_a_link_signed_for_a_pending_export_still_needs_approval(world: World) -> None:
    f = requested(world)
    token = links.issue(
        world.ctx.keyring,
        export_id=f.export_id,
        user_id=f.requester.id,
        expires_at=world.clock.now() + timedelta(minutes=5),
    )
    refused(f, lambda: f.download(token=token), 403, "export_not_approved")


def test_violations_are_listed_for_the_las_management_team(world: World) -> None:
    f = requested(world)
    before = last_alert_id(world)
    f.approve(by=f.requester)
    alerts = world.client.get(
        "/api/v1/alerts", params={"limit": 500}, headers=standing_manager(world).headers
    ).json()
    [alert] = [a for a in alerts if a["id"] > before and a["kind"] == "export_violation"]
    assert alert["severity"] == "high"
    assert alert["status"] == "open"
    assert alert["subject_user_id"] == f.requester.id
