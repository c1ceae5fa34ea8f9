"""The insider-browsing detector: reads the sealed audit log, scores views, alerts, suspends.

It reads the log in order from where it stopped (a cursor on the log position), so every view
is scored exactly once, whichever worker runs it, and the detector can be run as a background
thread in the app (every ``detector_interval_seconds``) or by `contactpoint detect`. A user's
daily score crossing ``snooping_alert_score`` raises one `snooping` alert for the management
team of the LA that owns the child whose view crossed it; crossing ``snooping_suspend_score``
suspends the account and ends its sessions (``auto_suspend``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from reference_app.access.permissions import Role
from reference_app.alerts.models import AlertKind, AlertSeverity
from reference_app.alerts.service import raise_alert
from reference_app.audit.service import RequestInfo
from reference_app.audit.tags import EventTag, Outcome
from reference_app.context import AppContext
from reference_app.detection import repository
from reference_app.detection.repository import SealedView, Tally
from reference_app.detection.rules import (
    POINTS,
    SnoopRule,
    ViewFacts,
    peer_outlier,
    score_view,
    vouches,
)
from reference_app.kit.controls import Control, enabled
from reference_app.kit.http import Call
from reference_app.practitioners.models import AccountStatus

CURSOR = "snooping"
VIEW_TAGS = (EventTag.CHILD_RECORD_VIEWED.value, EventTag.CHILD_RECORD_OVERRIDE.value)
DETECTOR_INFO = RequestInfo(request_id=None, source="detector")


@dataclass
class ScanReport:
    events: int = 0
    views: int = 0
    alerts: int = 0
    suspensions: int = 0
    rules: Counter[str] = field(default_factory=Counter)


def _same(a: bytes | None, b: bytes | None) -> bool:
    return a is not None and b is not None and a == b


def scan(ctx: AppContext, *, batch: int = 5000) -> ScanReport:
    """Score the sealed views not yet seen, in batches, until the log is read to its end."""
    total = ScanReport()
    if not enabled(ctx.settings, Control.SNOOPING_DETECTION):
        return total
    while True:
        with ctx.sessions() as db, db.begin():
            if not repository.try_lock(db):
                return total
            report = _scan_batch(ctx, db, batch)
        if report is None:
            return total
        total.events += report.events
        total.views += report.views
        total.alerts += report.alerts
        total.suspensions += report.suspensions
        total.rules.update(report.rules)


def _scan_batch(ctx: AppContext, db: Session, batch: int) -> ScanReport | None:
    """Score one batch of the log: a fixed number of statements whatever its size (the events,
    their children, canaries, viewers, the day's scores, the peer groups, one write of the
    scores), plus the alerts and suspensions it raises."""
    position = repository.cursor(db, CURSOR)
    upper, events = repository.sealed_events_after(db, position.position, VIEW_TAGS, batch)
    if upper is None:
        return None
    position.position = upper
    report = ScanReport(events=len(events))
    views = [e for e in events if e.outcome == Outcome.ALLOWED.value and e.actor_id and e.child_id]
    if not views:
        return report
    zone = ZoneInfo(ctx.settings.working_hours_timezone)
    children = repository.children(db, (e.child_id for e in views if e.child_id))
    canaries = repository.canaries(db, children)
    users = repository.practitioners(db, (e.actor_id for e in views if e.actor_id))
    local = {e.id: e.occurred_at.astimezone(zone) for e in views}
    days = {event_id: moment.date() for event_id, moment in local.items()}
    rows = repository.scores(db, ((e.actor_id, days[e.id]) for e in views if e.actor_id))
    shielded: dict[str, bool] = {}  # the sealed flags, opened once a child, when a rule asks
    crossing: dict[tuple[int, date], SealedView] = {}
    last_view: dict[int, SealedView] = {}
    for event in views:
        user = users.get(event.actor_id or 0)
        child = children.get(event.child_id or "")
        if user is None or child is None:
            continue
        key = (user.id, days[event.id])
        row = rows.get(key)
        if row is None:
            row = Tally(
                user_id=user.id,
                day=key[1],
                role=user.role,
                local_authority_id=user.local_authority_id,
            )
            rows[key] = row
        relationship = event.relationship or ""
        if not vouches(relationship) and child.id not in shielded:
            shielded[child.id] = repository.shielded(db, child)
        fired = score_view(
            ViewFacts(
                role=Role(user.role),
                relationship=relationship,
                local_time=local[event.id],
                canary=child.id in canaries,
                # A shielded child's household is protected as the child is: looking at a
                # sibling finds where the shielded child lives. (Only a view no involvement
                # vouches for reads the flags.)
                shielded=shielded.get(child.id, False),
                same_surname=_same(user.family_name_bidx, child.family_name_bidx),
                same_address=_same(user.home_postcode_bidx, child.postcode_bidx),
                working_days=ctx.settings.working_days,
            )
        )
        before = row.score
        _add(row, fired)
        row.views += 1
        row.changed = True
        last_view[user.id] = event
        report.views += 1
        report.rules.update(r.value for r in fired)
        if before < ctx.settings.snooping_alert_score <= row.score or (
            before < ctx.settings.snooping_suspend_score <= row.score
        ):
            crossing[key] = event
    # Each peer group's views as the scores stand after this batch: the stored ones, overlaid
    # with this batch's, in one query for every group.
    pending = [row for row in rows.values() if not row.rules.get(SnoopRule.PEER_VOLUME.value, 0)]
    groups = repository.group_views(db, {_group(row) for row in pending})
    for row in rows.values():
        if _group(row) in groups:
            groups[_group(row)][row.user_id] = row.views
    for row in pending:  # once a day
        key = (row.user_id, row.day)
        peers = [n for user_id, n in groups[_group(row)].items() if user_id != row.user_id]
        if peer_outlier(row.views, peers):
            before = row.score
            _add(row, [SnoopRule.PEER_VOLUME])
            row.changed = True
            report.rules[SnoopRule.PEER_VOLUME.value] += 1
            last = last_view.get(row.user_id)
            if last is not None and before < ctx.settings.snooping_alert_score <= row.score:
                crossing[key] = last
    for key, event in crossing.items():
        _respond(
            ctx, db, rows[key], event, children[event.child_id or ""].local_authority_id, report
        )
    repository.save_scores(db, rows.values())
    return report


def _group(row: Tally) -> tuple[date, str, int]:
    return (row.day, row.role, row.local_authority_id)


def _add(row: Tally, fired: list[SnoopRule]) -> None:
    for rule in fired:
        row.rules[rule.value] = row.rules.get(rule.value, 0) + 1
        row.score += POINTS[rule]


def _respond(
    ctx: AppContext,
    db: Session,
    row: Tally,
    event: SealedView,
    child_la: int,
    report: ScanReport,
) -> None:
    """Alert once a day at the alert score; suspend once at the suspend score."""
    from reference_app.practitioners.service import set_status

    call = Call(ctx, db, DETECTOR_INFO)
    now = ctx.clock.now()
    details: dict[str, Any] = {
        "score": row.score,
        "rules": dict(sorted(row.rules.items())),
        "day": str(row.day),
    }
    hard = row.score >= ctx.settings.snooping_suspend_score
    suspend = hard and row.suspended_at is None and enabled(ctx.settings, Control.AUTO_SUSPEND)
    if row.alerted_at is None or suspend:
        raise_alert(
            call,
            row.user_id,
            kind=AlertKind.SNOOPING,
            severity=AlertSeverity.CRITICAL if hard else AlertSeverity.HIGH,
            local_authority_id=child_la,
            child_id=event.child_id,
            audit_event_id=event.id,
            summary=(
                "Insider browsing: account suspended at the hard threshold"
                if suspend
                else "Insider browsing: record views outside any evident need to know"
            ),
            details={**details, "suspended": suspend},
        )
        row.alerted_at = row.alerted_at or now
        row.changed = True
        report.alerts += 1
    if suspend:
        set_status(
            call,
            repository.practitioner(db, row.user_id),
            AccountStatus.SUSPENDED,
            by=None,
            details={"by": "snooping_detection", "score": row.score},
        )
        row.suspended_at = now
        row.changed = True
        report.suspensions += 1
