"""Security metrics read from the database at collection time, so every worker answers alike.

With ``--workers N`` a scrape reaches one worker; a counter kept in process memory would show
that worker's share (and reset when it restarts). These figures are therefore read from the
tables the registry already keeps, by observable instruments whose callbacks share one
snapshot, cached for ``ttl`` seconds (one scrape, several instruments: one round of queries).

Cost per refresh (every query indexed or over a small table):

- ``audit_events`` is the one big table. Counting it whole per scrape would be a full scan at
  scale, so it is counted incrementally by primary key: rows up to a watermark ``W`` are
  counted once and remembered; each refresh aggregates only ``id > W`` (a range scan over the
  last minute or two of events). ``W`` advances to a ``max(id)`` seen at least ``settle``
  seconds earlier, so a transaction that took an id earlier but committed later is still
  counted (ids are taken at insert, not at commit). A new worker pays one full count at its
  first scrape.
- ``alerts``, ``export_requests``, ``audit_pending`` are small; ``audit_checkpoints`` is read
  by its primary key (newest first, one row).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from sqlalchemy import JSON, Engine, cast, func, select, type_coerce

from reference_app.alerts.models import Alert, AlertStatus
from reference_app.audit.models import AuditCheckpoint, AuditEvent, AuditPending
from reference_app.audit.tags import EventTag
from reference_app.exports.models import ExportRequest

DENIAL_TAGS = (EventTag.ACCESS_DENIED.value, EventTag.ACCESS_REFUSED.value)
LIMIT_TAG = EventTag.LIMIT_EXCEEDED.value
SUSPENSION_TAG = EventTag.USER_SUSPENDED.value


@dataclass
class Snapshot:
    """One reading of every security figure."""

    audit_events: Counter[str] = field(default_factory=Counter)  # by tag
    denials: Counter[str] = field(default_factory=Counter)  # by code (summaries weighted)
    limit_refusals: Counter[str] = field(default_factory=Counter)  # by code (the rule)
    alerts_raised: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts_open: Counter[tuple[str, str]] = field(default_factory=Counter)
    exports: Counter[str] = field(default_factory=Counter)  # by state
    unsealed: int = 0
    checkpoint_age: float | None = None  # seconds; None before the first checkpoint

    @property
    def suspensions(self) -> int:
        return self.audit_events[SUSPENSION_TAG]


@dataclass
class _AuditCounts:
    tags: Counter[str] = field(default_factory=Counter)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __add__(self, other: _AuditCounts) -> _AuditCounts:
        return _AuditCounts(self.tags + other.tags, self.codes + other.codes)


def _audit_counts(engine: Engine, above: int, upto: int | None) -> _AuditCounts:
    """Rows by tag, and denials/limit refusals by code, for ``above < id <= upto``."""
    ev = AuditEvent.__table__.c
    where = [ev.id > above] + ([ev.id <= upto] if upto is not None else [])
    # Text holding JSON: SQLite's json functions read it as is; PostgreSQL needs a cast.
    sqlite = engine.dialect.name == "sqlite"
    details = type_coerce(ev.details, JSON) if sqlite else cast(ev.details, JSON)
    code = details["code"].as_string()
    weight = func.coalesce(details["summarised"].as_integer(), 1)
    counts = _AuditCounts()
    with engine.connect() as conn:
        for tag, n in conn.execute(select(ev.tag, func.count()).where(*where).group_by(ev.tag)):
            counts.tags[tag] = int(n)
        coded = (
            select(ev.tag, code, func.sum(weight))
            .where(*where, ev.tag.in_((*DENIAL_TAGS, LIMIT_TAG)))
            .group_by(ev.tag, code)
        )
        for tag, c, n in conn.execute(coded):
            counts.codes[(tag, c or "unknown")] += int(n or 0)
    return counts


class SecurityMetrics:
    """The cached, worker-consistent reading behind the ``contactpoint.*`` instruments."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 5.0,
        settle: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.ttl, self.settle = ttl, settle
        self.clock, self.wall = clock, wall
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None
        self._settled = _AuditCounts()
        self._watermark = 0
        self._seen: list[tuple[float, int]] = []  # (when, max id then), oldest first
        self.refreshes = 0

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self.clock()
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1]
            snap = self._read(now)
            self._cached = (now, snap)
            self.refreshes += 1
            return snap

    def _advance(self, now: float) -> None:
        """Fold rows up to a max(id) seen ``settle`` seconds ago into the remembered counts."""
        ready = [(t, m) for t, m in self._seen if now - t >= self.settle]
        if not ready:
            return
        target = ready[-1][1]
        self._seen = [(t, m) for t, m in self._seen if now - t < self.settle]
        if target > self._watermark:
            self._settled = self._settled + _audit_counts(self.engine, self._watermark, target)
            self._watermark = target

    def _read(self, now: float) -> Snapshot:
        self._advance(now)
        ev = AuditEvent.__table__.c
        with self.engine.connect() as conn:
            max_id = conn.execute(select(func.max(ev.id))).scalar() or 0
        audit = self._settled + _audit_counts(self.engine, self._watermark, None)
        self._seen.append((now, int(max_id)))
        snap = Snapshot(audit_events=Counter(audit.tags))
        for (tag, code), n in audit.codes.items():
            (snap.limit_refusals if tag == LIMIT_TAG else snap.denials)[code] += n
        al = Alert.__table__.c
        ex = ExportRequest.__table__.c
        cp = AuditCheckpoint.__table__.c
        with self.engine.connect() as conn:
            for kind, severity, status, n in conn.execute(
                select(al.kind, al.severity, al.status, func.count()).group_by(
                    al.kind, al.severity, al.status
                )
            ):
                snap.alerts_raised[(kind, severity)] += int(n)
                if status == AlertStatus.OPEN.value:
                    snap.alerts_open[(kind, severity)] += int(n)
            for status, n in conn.execute(select(ex.status, func.count()).group_by(ex.status)):
                snap.exports[status] = int(n)
            snap.unsealed = int(
                conn.execute(select(func.count()).select_from(AuditPending.__table__)).scalar() or 0
            )
            signed = conn.execute(
                select(AuditCheckpoint.signed_at).order_by(cp.tree_size.desc()).limit(1)
            ).scalar()
        if signed is not None:
            snap.checkpoint_age = max(0.0, (self.wall() - signed).total_seconds())
        return snap

    def register(self, meter: Meter) -> None:
        """Create the agreed instruments (observable: read at each collection)."""
        for name, kind, unit, description, read in INSTRUMENTS:
            create = (
                meter.create_observable_counter
                if kind == "counter"
                else meter.create_observable_gauge
            )

            def callback(_options: CallbackOptions, read: Reader = read) -> Iterable[Observation]:
                return read(self.snapshot())

            create(name, [callback], unit=unit, description=description)


Reader = Callable[[Snapshot], list[Observation]]


def _by(key: str, counts: Counter[str]) -> list[Observation]:
    return [Observation(n, {key: value}) for value, n in counts.items()]


def _by_kind(counts: Counter[tuple[str, str]]) -> list[Observation]:
    return [Observation(n, {"kind": k, "severity": sev}) for (k, sev), n in counts.items()]


def _age(s: Snapshot) -> list[Observation]:
    return [Observation(s.checkpoint_age)] if s.checkpoint_age is not None else []


# name, kind, unit, description, reading (the names agreed with the dashboards and rules).
INSTRUMENTS: list[tuple[str, str, str, str, Reader]] = [
    (
        "contactpoint.audit.events",
        "counter",
        "{event}",
        "Audit events recorded, by tag",
        lambda s: _by("tag", s.audit_events),
    ),
    (
        "contactpoint.denials",
        "counter",
        "{denial}",
        "Refused and denied API requests, by error code",
        lambda s: _by("code", s.denials),
    ),
    (
        "contactpoint.alerts.raised",
        "counter",
        "{alert}",
        "Alerts raised, by kind and severity",
        lambda s: _by_kind(s.alerts_raised),
    ),
    (
        "contactpoint.alerts.open",
        "gauge",
        "{alert}",
        "Alerts still open (raised, not yet acknowledged)",
        lambda s: _by_kind(s.alerts_open),
    ),
    (
        "contactpoint.suspensions",
        "counter",
        "{suspension}",
        "Practitioner accounts suspended",
        lambda s: [Observation(s.suspensions)],
    ),
    (
        "contactpoint.limit.refusals",
        "counter",
        "{refusal}",
        "Requests refused by a rate, harvesting or quota limit, by rule",
        lambda s: _by("rule", s.limit_refusals),
    ),
    (
        "contactpoint.exports",
        "gauge",
        "{export}",
        "Export requests, by state",
        lambda s: _by("state", s.exports),
    ),
    (
        "contactpoint.audit.unsealed",
        "gauge",
        "{event}",
        "Audit events not yet sealed into the signed log",
        lambda s: [Observation(s.unsealed)],
    ),
    (
        "contactpoint.audit.checkpoint.age",
        "gauge",
        "s",
        "Seconds since the newest signed audit checkpoint",
        _age,
    ),
]
