"""The insider-browsing detector: reads the sealed audit log, scores views, alerts, suspends.

It reads the log in order from where it stopped (a cursor on the log position), so every view
is scored exactly once, whichever worker runs it, and the detector can be run as a background
thread in the app (every ``detector_interval_seconds``) or by `contactpoint detect`. A user's
daily score crossing ``snooping_alert_score`` raises one `snooping` alert for the management
team of the LA that owns the child whose view crossed it; crossing ``snooping_suspend_score``
suspends the account and ends its sessions (``auto_suspend``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from reference_app.access.permissions import Role
from reference_app.alerts.models import AlertKind, AlertSeverity
from reference_app.alerts.service import raise_alert
from reference_app.audit.models import AuditEvent
from reference_app.audit.service import RequestInfo
from reference_app.audit.tags import EventTag, Outcome
from reference_app.context import AppContext
from reference_app.detection import repository
from reference_app.detection.models import RiskScore
from reference_app.detection.rules import POINTS, SnoopRule, ViewFacts, peer_outlier, score_view
from reference_app.kit.controls import Control, enabled
from reference_app.kit.http import Call
from reference_app.practitioners.models import AccountStatus, Practitioner

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
    days = {e.id: e.occurred_at.astimezone(zone).date() for e in views}
    rows = repository.scores(db, ((e.actor_id, days[e.id]) for e in views if e.actor_id))
    crossing: dict[tuple[int, date], AuditEvent] = {}
    for event in views:
        user = users.get(event.actor_id or 0)
        child = children.get(event.child_id or "")
        if user is None or child is None:
            continue
        key = (user.id, days[event.id])
        row = rows.get(key)
        if row is None:
            row = RiskScore(
                user_id=user.id,
                day=key[1],
                role=user.role,
                local_authority_id=user.local_authority_id,
                views=0,
                score=0,
                rules="{}",
            )
            db.add(row)
            rows[key] = row
        fired = score_view(
            ViewFacts(
                role=Role(user.role),
                relationship=event.relationship or "",
                local_time=event.occurred_at.astimezone(zone),
                canary=child.id in canaries,
                # A shielded child's household is protected as the child is: looking at a
                # sibling finds where the shielded child lives.
                shielded=bool(child.shielded or child.household_shielded),
                same_surname=_same(user.family_name_bidx, child.family_name_bidx),
                same_address=_same(user.home_postcode_bidx, child.postcode_bidx),
                working_days=ctx.settings.working_days,
            )
        )
        before = row.score
        _add(row, fired)
        row.views += 1
        report.views += 1
        report.rules.update(r.value for r in fired)
        if before < ctx.settings.snooping_alert_score <= row.score or (
            before < ctx.settings.snooping_suspend_score <= row.score
        ):
            crossing[key] = event
    db.flush()
    groups: dict[tuple[date, str, int], dict[int, int]] = {}  # one query per peer group
    for key, row in rows.items():
        if json.loads(row.rules).get(SnoopRule.PEER_VOLUME.value, 0):
            continue  # once a day
        group = (row.day, row.role, row.local_authority_id)
        if group not in groups:
            groups[group] = repository.group_views(db, *group)
        peers = [views for user_id, views in groups[group].items() if user_id != row.user_id]
        if peer_outlier(row.views, peers):
            before = row.score
            _add(row, [SnoopRule.PEER_VOLUME])
            report.rules[SnoopRule.PEER_VOLUME.value] += 1
            last = next((e for e in reversed(views) if e.actor_id == key[0]), None)
            if last is not None and before < ctx.settings.snooping_alert_score <= row.score:
                crossing[key] = last
    for key, event in crossing.items():
        row = rows[key]
        _respond(
            ctx,
            db,
            users[key[0]],
            row,
            event,
            children[event.child_id or ""].local_authority_id,
            report,
        )
    return report


def _add(row: RiskScore, fired: list[SnoopRule]) -> None:
    if not fired:
        return
    counts: dict[str, int] = json.loads(row.rules or "{}")
    for rule in fired:
        counts[rule.value] = counts.get(rule.value, 0) + 1
        row.score += POINTS[rule]
    row.rules = json.dumps(counts, sort_keys=True)


def _respond(
    ctx: AppContext,
    db: Session,
    user: Practitioner,
    row: RiskScore,
    event: AuditEvent,
    child_la: int,
    report: ScanReport,
) -> None:
    """Alert once a day at the alert score; suspend once at the suspend score."""
    from reference_app.practitioners.service import set_status

    call = Call(ctx, db, DETECTOR_INFO)
    now = ctx.clock.now()
    details: dict[str, Any] = {
        "score": row.score,
        "rules": json.loads(row.rules),
        "day": str(row.day),
    }
    hard = row.score >= ctx.settings.snooping_suspend_score
    suspend = hard and row.suspended_at is None and enabled(ctx.settings, Control.AUTO_SUSPEND)
    if row.alerted_at is None or suspend:
        raise_alert(
            call,
            user.id,
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
        report.alerts += 1
    if suspend:
        set_status(
            call,
            user,
            AccountStatus.SUSPENDED,
            by=None,
            details={"by": "snooping_detection", "score": row.score},
        )
        row.suspended_at = now
        report.suspensions += 1
