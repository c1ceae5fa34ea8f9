"""Insider abuse: browsing relatives, celebrities and canaries is alerted; suspension is instant.

The registry scores each record view (a relative's surname 50 points, a shielded child 40, no
involvement 10, out of hours more) and alerts the management team of the child's LA at 60 points
a day, suspending at 150; a canary (honeytoken) child alerts on any view, inside the request.
Each scenario measures how soon the alert reaches the team (`--alert-within`, 30 s by default),
and the team's suspension must end the insider's session on their very next request. Only the
insider's own LA reinstates them: two of its data managers, through an alert still open. Nobody
handles an alert about themselves: a data manager cannot acknowledge or close away the trace of
their own act.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from security_tests.context import Caller, Context, expect_error, fictional_family_name, refusal
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.scenarios._common import ask_unshield, session_state

CELEBRITY_VIEWS = 3  # shielded and uninvolved: 50 points a view in hours, 150 suspends
OVERRIDE = "emergency_override; harness check of who may reinstate"


def _insider(ctx: Context, dm: Caller, *, far: bool = False) -> tuple[Caller, str]:
    """A throwaway practitioner whose display name ends in a fresh fictional family name.

    In the data manager's LA, or in another one when ``far``; returns it and the family name.
    """
    family = fictional_family_name()
    name = f"Ada {family}"
    if far:
        return ctx.outsider("education_practitioner", dm, display_name=name), family
    return ctx.colleague("education_practitioner", dm, display_name=name), family


def _relative_view(ctx: Context, insider: Caller, family: str, dm: Caller) -> tuple[str, float]:
    """Register a child of ``family`` in the LA; the insider views it, uninvolved."""
    child = ctx.new_child(dm, family_name=family)
    response = insider.view(child.child_id)
    since = time.monotonic()
    expect(response.status_code == 200, f"the insider's view answered {response.status_code}")
    return child.child_id, since


def _suspended(caller: Caller) -> bool | None:
    """True once the caller's session is refused as suspended (None until then)."""
    return True if session_state(caller) == (403, "account_suspended") else None


@scenario(
    "insider.relative-browsing",
    owasp=["API1:2023", "API6:2023"],
    asvs=["16.3.2", "8.2.2"],
    severity=Severity.HIGH,
    guards=["snooping_detection", "audit_trail"],
)
def relative_browsing(ctx: Context) -> None:
    """A practitioner viewing a child who shares their family name is alerted to the LA's team."""
    dm = ctx.manager()
    insider, family = _insider(ctx, dm)
    child_id, since = _relative_view(ctx, insider, family, dm)
    alert = ctx.expect_alert(
        dm, "snooping", subject=insider, since=since, child_id=child_id, what="relative"
    )
    rules = (alert.get("details") or {}).get("rules") or {}
    ctx.note(f"rules fired: {', '.join(sorted(rules)) or 'none named'}")


@scenario(
    "insider.celebrity-record",
    owasp=["API1:2023", "API6:2023"],
    asvs=["16.3.2", "8.3.2"],
    severity=Severity.HIGH,
    guards=["snooping_detection", "auto_suspend", "audit_trail"],
)
def celebrity_record(ctx: Context) -> None:
    """Repeated uninvolved views of a shielded record alert the LA and suspend the viewer."""
    dm = ctx.manager()
    celebrity = ctx.new_child(dm, shielded=True)
    for role in ("education_practitioner", "health_practitioner"):
        onlooker = ctx.colleague(role, dm)
        opened = 0
        for _ in range(CELEBRITY_VIEWS):
            response = onlooker.view(celebrity.child_id)
            if refusal(response) == (403, "account_suspended"):
                break  # out of hours the second view already reaches the threshold
            expect(response.status_code == 200, f"{role}: a view answered {response.status_code}")
            opened += 1
        since = time.monotonic()
        ctx.expect_alert(
            dm,
            "snooping",
            subject=onlooker,
            since=since,
            child_id=celebrity.child_id,
            what=f"{role}, {opened} views of a shielded record",
        )
        suspended = ctx.wait_for(partial(_suspended, onlooker), ctx.target.alert_within, 0.25)
        expect(
            suspended,
            f"{role}: {opened} uninvolved views of a shielded record did not suspend the account "
            f"within {ctx.target.alert_within:.0f} s",
        )
        ctx.note(f"{role}: suspended {time.monotonic() - since:.2f} s after view {opened}")


@scenario(
    "insider.canary-view",
    owasp=["API1:2023", "API6:2023"],
    asvs=["16.3.2"],
    severity=Severity.CRITICAL,
    guards=["canary_alerts"],
    needs=["canaries"],
)
def canary_view(ctx: Context) -> None:
    """Any view of a canary (honeytoken) child alerts its LA's team at once."""
    dm = ctx.manager()
    own = [c for c in ctx.target.canaries if c.get("local_authority") == dm.account.local_authority]
    # Prefer a canary the shared data manager reviews; otherwise a national auditor sees all.
    canary = (own or ctx.target.canaries)[0]
    reviewer = dm if own else ctx.caller("national_auditor")
    insider = ctx.colleague("health_practitioner", dm)
    response = insider.view(canary["child_id"])
    since = time.monotonic()
    expect(response.status_code == 200, f"the canary view answered {response.status_code}")
    first_look = [
        a
        for a in reviewer.alerts("canary_access")
        if a.get("subject_user_id") == insider.account.id
        and a.get("child_id") == canary["child_id"]
    ]
    ctx.note(f"canary alert present on the first look after the view: {bool(first_look)}")
    alert = ctx.expect_alert(
        reviewer,
        "canary_access",
        subject=insider,
        since=since,
        child_id=canary["child_id"],
        what="canary view",
    )
    expect(alert.get("severity") == "critical", f"a canary alert is only {alert.get('severity')}")


@scenario(
    "insider.alert-to-child-la",
    owasp=["API1:2023", "API6:2023"],
    asvs=["16.3.2", "16.2.1"],
    severity=Severity.HIGH,
    guards=["snooping_detection", "audit_trail"],
)
def alert_to_child_la(ctx: Context) -> None:
    """Browsing across LAs alerts the child's LA in time, with references and no personal data."""
    dm = ctx.manager()
    insider, family = _insider(ctx, dm, far=True)
    child_id, since = _relative_view(ctx, insider, family, dm)
    alert = ctx.expect_alert(
        dm, "snooping", subject=insider, since=since, child_id=child_id, what="another LA"
    )
    expect(alert.get("audit_event_id"), "the alert does not point at the audit event")
    text = json.dumps(alert).lower()
    expect(family.lower() not in text, "the alert carries the child's family name")
    # Alerts go to the child's LA only: the management team of a third LA does not see it.
    try:
        third = ctx.caller("la_data_manager", other_than=dm.account.local_authority)
    except Skip:  # the personas file may hold one data manager only
        ctx.note("no second data manager persona: the alert's reach to other LAs is not checked")
        return
    if third.account.local_authority == insider.account.local_authority:
        ctx.note("the second data manager persona is the insider's own LA's: not checked")
        return
    seen = [a for a in third.alerts("snooping") if a.get("child_id") == child_id]
    expect(not seen, "another LA's management team sees the alert about this child")


@scenario(
    "insider.suspension-immediate",
    owasp=["API2:2023", "API5:2023"],
    asvs=["8.3.2"],
    severity=Severity.HIGH,
    guards=["snooping_detection", "session_revocation", "audit_trail"],
)
def suspension_immediate(ctx: Context) -> None:
    """The management team's suspension refuses the insider's very next request."""
    dm = ctx.manager()
    insider, family = _insider(ctx, dm)
    child_id, since = _relative_view(ctx, insider, family, dm)
    alert = ctx.expect_alert(
        dm, "snooping", subject=insider, since=since, child_id=child_id, what="relative"
    )
    suspend = dm.post(f"/alerts/{alert['id']}/suspend-subject", json={"note": "harness check"})
    done = time.monotonic()
    expect(suspend.status_code == 200, f"suspend-subject answered {suspend.status_code}")
    subject: dict[str, Any] = suspend.json().get("subject") or {}
    expect(subject.get("status") == "suspended", f"the subject is {subject.get('status')!r}")
    next_view = insider.view(child_id)
    ctx.note(f"next request {time.monotonic() - done:.3f} s after the suspension")
    expect_error(next_view, (401, 403))
    status, code = session_state(insider)
    expect(status in (401, 403), f"the suspended insider's session still answers {status} {code}")


def _alerts_about(reviewer: Caller, subject: Caller) -> list[int]:
    """The ids of the override alerts about ``subject`` that ``reviewer`` sees, oldest first."""
    return sorted(
        a["id"]
        for a in reviewer.alerts("override")
        if a.get("subject_user_id") == subject.account.id
    )


def _subject_status(reviewer: Caller, alert_id: int) -> str | None:
    """The alert subject's account status as ``reviewer`` reads it on the alert."""
    response = reviewer.get(f"/alerts/{alert_id}")
    if response.status_code != 200:
        return None
    subject: dict[str, Any] = response.json().get("subject") or {}
    return subject.get("status")


@scenario(
    "insider.reinstatement-authority",
    owasp=["API5:2023", "API1:2023"],
    asvs=["8.3.2", "2.3.5"],
    severity=Severity.HIGH,
    guards=["suspension_authority"],
)
def reinstatement_authority(ctx: Context) -> None:
    """Only two data managers of the insider's own LA reinstate them, through an open alert."""
    home = ctx.manager()
    try:
        far = ctx.caller("la_data_manager", other_than=home.account.local_authority)
    except Skip:
        raise Skip("the personas file has one LA's data manager only") from None
    # The insider works for the home LA and breaks the glass on a child of another LA, whose
    # team is alerted and suspends them: the suspending LA is not the employing one.
    insider = ctx.colleague("social_care_practitioner", home)
    child_id = ctx.new_child(far).child_id
    for _ in range(2):
        opened = insider.view(child_id, reason=OVERRIDE)
        expect(opened.status_code == 200, f"the override answered {opened.status_code}")
    ctx.expect_alert(
        far,
        "override",
        subject=insider,
        since=time.monotonic(),
        child_id=child_id,
        what="an override",
    )
    both = ctx.wait_for(
        lambda: ids if len(ids := _alerts_about(far, insider)) >= 2 else None,
        ctx.target.alert_within,
    )
    expect(both is not None, "the second override raised no second alert")
    assert both is not None
    first, second = both[:2]
    suspended = far.post(f"/alerts/{first}/suspend-subject", json={"note": "harness check"})
    if refusal(suspended) != (409, "account_unchanged"):
        expect(suspended.status_code == 200, f"suspend-subject answered {suspended.status_code}")
    expect(_subject_status(far, first) == "suspended", "the insider is not suspended")
    # The employing LA's team sees the alerts about its own staff.
    expect(
        first in _alerts_about(home, insider),
        "the insider's own LA does not see the alert about its staff",
    )

    foreign = far.post(f"/alerts/{first}/reinstate-subject", json={"note": "harness check"})
    expect(
        _subject_status(far, first) == "suspended",
        "a data manager of another LA than the insider's reinstated them",
    )
    expect_error(foreign, (403, 404))

    one, other = ctx.colleague("la_data_manager", home), ctx.colleague("la_data_manager", home)
    closed = far.post(f"/alerts/{first}/close", json={"note": "harness check"})
    expect(closed.status_code == 200, f"closing the alert answered {closed.status_code}")
    late = one.post(f"/alerts/{first}/reinstate-subject", json={"note": "harness check"})
    expect(_subject_status(one, first) == "suspended", "a closed alert reinstated the insider")
    expect_error(late, (403, 409))

    asked = one.post(f"/alerts/{second}/reinstate-subject", json={"note": "harness check"})
    expect(asked.status_code < 300, f"the first reinstatement step answered {asked.status_code}")
    expect(
        _subject_status(one, second) == "suspended",
        "one data manager alone reinstated the insider",
    )
    expect_error(
        one.post(f"/alerts/{second}/reinstate-subject", json={}), 403, "own_reinstatement_request"
    )
    confirmed = other.post(f"/alerts/{second}/reinstate-subject", json={"note": "harness check"})
    expect(confirmed.status_code == 200, f"the confirmation answered {confirmed.status_code}")
    expect(
        _subject_status(other, second) == "active",
        "two data managers of the insider's own LA could not reinstate them",
    )


@scenario(
    "insider.claim-alerted",
    owasp=["API1:2023", "API6:2023"],
    asvs=["16.3.2", "8.2.2"],
    severity=Severity.HIGH,
    guards=["claim_confirmation"],
)
def claim_alerted(ctx: Context) -> None:
    """A practitioner's claim of an involvement with a child alerts the child's LA team."""
    dm = ctx.manager()
    child = ctx.new_child(dm)
    claimer, _ = _insider(ctx, dm, far=True)
    involvement = ctx.claim(claimer, child.child_id)
    since = time.monotonic()
    ctx.expect_alert(
        dm,
        "involvement_claim",
        subject=claimer,
        since=since,
        child_id=child.child_id,
        where=lambda alert: (alert.get("details") or {}).get("involvement_id") == involvement,
        what="involvement claimed",
    )


@scenario(
    "insider.claim-then-snoop",
    owasp=["API1:2023", "API6:2023"],
    asvs=["16.3.2", "8.2.2"],
    severity=Severity.HIGH,
    guards=["claim_confirmation"],
)
def claim_then_snoop(ctx: Context) -> None:
    """Claiming an involvement first does not silence the alert on a view of a relative's child."""
    dm = ctx.manager()
    insider, family = _insider(ctx, dm, far=True)
    child = ctx.new_child(dm, family_name=family)
    ctx.claim(insider, child.child_id)
    response = insider.view(child.child_id)
    since = time.monotonic()
    expect(response.status_code == 200, f"the insider's view answered {response.status_code}")
    alert = ctx.expect_alert(
        dm, "snooping", subject=insider, since=since, child_id=child.child_id, what="relative"
    )
    rules = (alert.get("details") or {}).get("rules") or {}
    ctx.note(f"rules fired after the claim: {', '.join(sorted(rules)) or 'none named'}")


_OWN_ALERT_STEPS = ("acknowledge", "investigate", "close", "suspend-subject")


@scenario(
    "insider.own-alert",
    owasp=["API5:2023", "API1:2023"],
    asvs=["2.3.5", "8.2.2", "16.2.1"],
    severity=Severity.HIGH,
    guards=["alert_separation"],
)
def own_alert(ctx: Context) -> None:
    """A data manager cannot acknowledge, investigate, close or act on an alert about themselves."""
    dm = ctx.manager()
    child_id = ctx.new_child(dm, shielded=True).child_id
    # Asking to lift a shield alerts the LA's team about the asker, a data manager who can
    # read that alert: the one to clear it must be someone else.
    insider = ctx.colleague("la_data_manager", dm)
    since = ask_unshield(insider, child_id, "harness check of who handles the alert")
    alert = ctx.expect_alert(
        insider,
        "unshield_requested",
        subject=insider,
        since=since,
        child_id=child_id,
        what="the data manager's own unshield request",
    )
    for step in _OWN_ALERT_STEPS:
        response = insider.post(f"/alerts/{alert['id']}/{step}", json={"note": "harness check"})
        expect(
            response.status_code >= 400,
            f"the alert's own subject could {step} it ({response.status_code})",
        )
        expect_error(response, 403, "own_alert")
    seen = dm.get(f"/alerts/{alert['id']}")
    status = seen.json().get("status") if seen.status_code == 200 else None
    expect(status == "open", f"the alert about the data manager is {status!r} after their tries")
    ctx.note(f"own alert {alert['id']}: {', '.join(_OWN_ALERT_STEPS)} refused 403 own_alert")
