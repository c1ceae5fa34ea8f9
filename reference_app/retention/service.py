"""Retention: archive every child who has turned 18, purge children archived six years ago.

Archived records stay visible to the owning LA's data managers only (the children service and
repository enforce that); purging deletes the child, its carer links, involvements, canary row
and change requests, and carers no longer linked to any child. The audit trail stays: it has
no foreign key to the children, and it records each archive and purge.

The date of birth is stored only encrypted, so archiving decrypts it, batch by batch, for every
live record. There is deliberately no clear-text date-of-birth or birthday column to query: it
would put every child's date of birth in a database dump. For the same reason ``archived_at``
is the time of the run, never the 18th birthday.

Each batch commits on its own, so an interrupted run leaves whole batches, and a rerun picks up
what is left: archiving only touches live records and purging only archived ones, each by a
conditional statement, so running twice (or two runs at once) changes each record once.

Audit: one event per child (``RETENTION_ARCHIVED`` or ``RETENTION_PURGED`` with its
``child_id``), not one per batch. The trail is indexed by child, so the child's access history
and a subject access pack find the event with the same lookup as every other; a batch event
would hide the ids in its details, where no index reaches. Their volume follows the births: in
steady state about 1,700 children a day turn 18 in England.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from reference_app.audit.service import RequestInfo, record_per_child
from reference_app.audit.tags import EventTag
from reference_app.config import Environment
from reference_app.context import AppContext
from reference_app.kit.clock import age_on
from reference_app.retention import repository

ARCHIVE_AT_AGE = 18
PURGE_AFTER_YEARS = 6
DEFAULT_BATCH = 5000


class RetentionRefused(Exception):
    """The run would be unsafe as asked; nothing was changed."""


class Progress(Protocol):
    def start(self, phase: str, total: int) -> None: ...

    def advance(self, rows: int) -> None: ...

    def end(self) -> None: ...


@dataclass
class RetentionReport:
    as_of: date
    dry_run: bool
    run_id: str
    live_checked: int = 0
    archived: int = 0
    purged: int = 0
    carers_purged: int = 0
    archive_batches: int = 0
    purge_batches: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return (self.archived or self.purged) > 0 and not self.dry_run

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["as_of"] = self.as_of.isoformat()
        doc["changed"] = self.changed
        return doc


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def purge_cutoff(as_of: date) -> datetime:
    """Records archived before this moment are purged: archived on or before the same day
    six years before ``as_of``."""
    day = years_before(as_of, PURGE_AFTER_YEARS) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def run(
    ctx: AppContext,
    *,
    as_of: date | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> RetentionReport:
    """Purge what is due, then archive what is due, as of ``as_of`` (default: the context's
    clock). A date later than today is refused in production: it would archive children
    before they turn 18 and purge records early."""
    now = ctx.clock.now()
    day = as_of or now.date()
    if day > now.date() and ctx.settings.environment is Environment.PRODUCTION:
        raise RetentionRefused(
            f"--as-of {day.isoformat()} is after today ({now.date().isoformat()}): it would "
            "archive and purge records early; only development and test builds allow it"
        )
    # The moment recorded as archived_at: now, or the start of the day asked for.
    moment = now if day == now.date() else datetime(day.year, day.month, day.day, tzinfo=UTC)
    report = RetentionReport(as_of=day, dry_run=dry_run, run_id=secrets.token_hex(8))
    info = RequestInfo(request_id=report.run_id, source="retention")
    started = time.perf_counter()
    _purge(ctx, report, info, purge_cutoff(day), batch_size, progress)
    report.seconds["purge"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    decrypt = _archive(ctx, report, info, moment, batch_size, progress)
    report.seconds["archive"] = round(time.perf_counter() - started, 3)
    report.seconds["archive_decrypt"] = round(decrypt, 3)
    return report


def _archive(
    ctx: AppContext,
    report: RetentionReport,
    info: RequestInfo,
    moment: datetime,
    batch_size: int,
    progress: Progress | None,
) -> float:
    """Sweep live records in id order, decrypting dates of birth; return the decrypt time."""
    cipher = ctx.crypto.cipher
    on = datetime(report.as_of.year, report.as_of.month, report.as_of.day, tzinfo=UTC)
    decrypting = 0.0
    with ctx.sessions() as db, db.begin():
        total = repository.count_live(db)
    if progress:
        progress.start("archive", total)
    after = ""
    while True:
        with ctx.sessions() as db, db.begin():
            batch = repository.live_batch(db, after=after, limit=batch_size)
            if not batch:
                break
            after = batch[-1][0]
            started = time.perf_counter()
            due = [
                child_id
                for child_id, dob in batch
                if age_on(cipher.decrypt(dob, "children.date_of_birth"), on) >= ARCHIVE_AT_AGE
            ]
            decrypting += time.perf_counter() - started
            report.live_checked += len(batch)
            report.archive_batches += 1
            if report.dry_run:
                report.archived += len(due)
            elif due:
                archived = repository.archive(db, due, moment)
                _record(ctx, db, info, report, EventTag.RETENTION_ARCHIVED, archived)
                report.archived += len(archived)
        if progress:
            progress.advance(len(batch))
    if progress:
        progress.end()
    return decrypting


def _purge(
    ctx: AppContext,
    report: RetentionReport,
    info: RequestInfo,
    before: datetime,
    batch_size: int,
    progress: Progress | None,
) -> None:
    """Delete the children archived before ``before``, batch by batch."""
    with ctx.sessions() as db, db.begin():
        total = repository.count_due_for_purge(db, before)
    if progress:
        progress.start("purge", total)
    after = ""
    while True:
        with ctx.sessions() as db, db.begin():
            batch = repository.due_for_purge(db, before=before, after=after, limit=batch_size)
            if not batch:
                break
            after = batch[-1][0]
            report.purge_batches += 1
            owners = dict(batch)
            if report.dry_run:
                report.purged += len(owners)
            else:
                purged, carers = repository.purge(db, list(owners), before)
                report.carers_purged += carers
                # The owning LA stays on the trail: its team can still answer a subject
                # access request from the history the trail keeps.
                _record(ctx, db, info, report, EventTag.RETENTION_PURGED, purged, owners)
                report.purged += len(purged)
        if progress:
            progress.advance(len(batch))
    if progress:
        progress.end()


def _record(
    ctx: AppContext,
    db: Session,
    info: RequestInfo,
    report: RetentionReport,
    tag: EventTag,
    child_ids: list[str],
    owners: dict[str, int] | None = None,
) -> None:
    """One event per child, written in bulk with the batch."""
    run = {"as_of": report.as_of.isoformat(), "run_id": report.run_id}
    details = {
        child_id: run | ({"local_authority_id": owners[child_id]} if owners else {})
        for child_id in child_ids
    }
    record_per_child(db, ctx, tag, info=info, details_by_child=details)
