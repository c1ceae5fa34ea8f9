"""Background work: CPU per audit event of the sealer and the snooping detector at 1,000 a second.

One run, on one machine, for each backend (a scratch PostgreSQL database it creates and drops, and
a SQLite file in a throwaway folder):

1. A world: the 152 local authorities, an organisation of each kind in a few of them,
   ``--practitioners`` accounts (established staff of every practitioner role, with home
   postcodes) and ``--children`` children, a few of them canaries.
2. Catch-up: ``--history`` view events written in bulk, then sealed (``seal_all``) and scanned
   (``scan``) from cold in this process, one after the other: the cost per event of a backlog,
   and the history the steady phase runs on top of.
3. Steady: three processes for ``--seconds``: a feeder recording view events at ``--rate`` a
   second through the registry's own audit write (``audit.service.record``: the event and its
   pending marker; the events due in each 10 ms tick in one transaction), the sealer and the
   detector, each on its own ``Periodic`` at the registry's default interval (1 s), as an app
   instance runs them. When the feeder stops, the sealer and the detector drain what is left.

CPU is the process CPU of each (``time.process_time`` between the start and the end of the
phase, every thread) and, on PostgreSQL, the CPU of its backends (utime + stime from
``/proc/<pid>/stat``; each process connects under an ``application_name`` of its own, and the
backends are sampled once a second). Per event means per event the feeder wrote. Lag is sampled
every quarter second: events not yet sealed (the pending markers) and not yet scanned (those,
plus sealed events past the detector's cursor), at most during the run and when the feeder stops.

Baselines in the same run, so the cost is also a ratio: the feeder's own CPU per event (what
writing the trail costs anyway, app and database), and a bare hash of the same events' leaves
(canonical JSON and SHA-256 of the documents read back, in a plain loop, no database).

The views are what an ordinary working day looks like to the detector: the clock of every
process is moved to a Tuesday at 10:00 in London (so the figures do not depend on the hour the
benchmark is run at), 95 % of views under a settled involvement, 3 % under a claim and 2 % under
a young confirmation, a few practitioners looking at a relative's or neighbour's child, and the
odd canary.

    .venv/bin/python scripts/bench_background.py --label after --out benchmarks/background.json

``--label`` names the run in the report (``before``, ``after``): a report that exists is updated,
its other labels kept, so the figures of two commits sit side by side.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.alerts.models import Canary
from reference_app.audit import repository as audit_repository
from reference_app.audit.models import AuditLogEntry, AuditPending
from reference_app.audit.service import RequestInfo, document_leaf, document_of, record, seal_all
from reference_app.audit.tags import AccessRelationship, EventTag, Outcome
from reference_app.children.models import Child
from reference_app.children.service import child_columns
from reference_app.config import Environment, Settings
from reference_app.context import AppContext, build_context
from reference_app.detection.models import DetectorCursor
from reference_app.detection.service import CURSOR, scan
from reference_app.kit import identifiers
from reference_app.kit.background import Periodic
from reference_app.kit.clock import Clock
from reference_app.kit.db import normalise_url
from reference_app.kit.keys import generate_document, parse_document
from reference_app.kit.migrate import upgrade
from reference_app.localauthorities.service import seed_local_authorities
from reference_app.practitioners.service import create_account
from reference_app.services.models import Organisation, OrganisationKind
from synthetic_data.bench import machine

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LONDON = ZoneInfo("Europe/London")
ROLES = {
    Role.EDUCATION_PRACTITIONER: OrganisationKind.SCHOOL,
    Role.HEALTH_PRACTITIONER: OrganisationKind.GP_PRACTICE,
    Role.SOCIAL_CARE_PRACTITIONER: OrganisationKind.CHILDRENS_SOCIAL_CARE,
    Role.YOUTH_OFFENDING_PRACTITIONER: OrganisationKind.YOUTH_OFFENDING_TEAM,
    Role.POLICE_PRACTITIONER: OrganisationKind.POLICE,
    Role.VOLUNTARY_PRACTITIONER: OrganisationKind.VOLUNTARY_ORGANISATION,
}
LOCAL_AUTHORITIES = 8  # the practitioners and children spread over this many LAs
SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies"]
FIELDS_SHOWN = ["address", "carers", "date_of_birth", "gender", "name", "services"]
TICK_SECONDS = 0.01


# -- the clock, the same in every process ------------------------------------------------------


def working_morning() -> float:
    """Seconds from now to the next Tuesday at 10:00 in London."""
    now = datetime.now(UTC).astimezone(LONDON)
    target = (now + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    while target.weekday() != 1:
        target += timedelta(days=1)
    return (target - now).total_seconds()


class ShiftedClock(Clock):
    """Real time moved by a fixed offset: every process sees the same working morning."""

    def __init__(self, offset: float) -> None:
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


# -- the world ---------------------------------------------------------------------------------


def settings_for(url: str, name: str | None = None) -> Settings:
    """A test build's settings; ``name`` tags the PostgreSQL connections of one process."""
    if name and make_url(url).get_backend_name() == "postgresql":
        url = (
            make_url(url)
            .update_query_dict({"application_name": name})
            .render_as_string(hide_password=False)
        )
    return Settings(
        environment=Environment.TEST,
        database_url=url,
        database_pool_size=2,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        audit_sealer_enabled=False,
        detector_enabled=False,
    )


def context(url: str, keys: dict[str, Any], offset: float, name: str | None = None) -> AppContext:
    # The detector's alerts are notified as log lines: kept off the benchmark's console.
    logging.getLogger("contactpoint.alerts").disabled = True
    return build_context(
        settings_for(url, name), keyring=parse_document(keys), clock=ShiftedClock(offset)
    )


def build_world(
    ctx: AppContext, practitioners: int, children: int, rng: random.Random
) -> dict[str, Any]:
    """Accounts, children and canaries; what the feeder needs to make views, as plain data."""
    now = ctx.clock.now()
    with ctx.sessions() as db, db.begin():
        las = sorted(la.id for la in seed_local_authorities(db).values())[:LOCAL_AUTHORITIES]
        orgs: dict[tuple[int, OrganisationKind], Organisation] = {}
        for la_id in las:
            for kind in ROLES.values():
                org = Organisation(
                    name=f"Bench {kind.value} {la_id}",
                    kind=kind.value,
                    local_authority_id=la_id,
                    phone="01632 960000",
                )
                db.add(org)
                orgs[(la_id, kind)] = org
        db.flush()
        kids: list[dict[str, Any]] = []
        for n in range(children):
            family = f"{rng.choice(SURNAMES)}{n}"
            postcode = f"PR{rng.randrange(1, 99)} {rng.randrange(1, 9)}{n % 26 + 65:c}Z"
            child = Child(
                id=identifiers.new_child_id(),
                local_authority_id=rng.choice(las),
                gender=rng.choice(["female", "male"]),
                shielded=rng.random() < 0.005,
                created_at=now,
                updated_at=now,
                **child_columns(
                    ctx.crypto,
                    given_name="Ava",
                    family_name=family,
                    date_of_birth=(
                        date(2026, 1, 1) - timedelta(days=rng.randrange(400, 6000))
                    ).isoformat(),
                    address={
                        "line1": "1 Mill Lane",
                        "line2": None,
                        "town": "Preston",
                        "postcode": postcode,
                    },
                ),
            )
            db.add(child)
            kids.append({"id": child.id, "family": family, "postcode": postcode})
            if n % 1000 == 999:
                db.flush()
        db.flush()
        canaries = [kid["id"] for kid in rng.sample(kids, 10)]
        db.add_all(Canary(child_id=child_id, registered_at=now) for child_id in canaries)
        users: list[dict[str, Any]] = []
        for n in range(practitioners):
            role = rng.choice(list(ROLES))
            la_id = rng.choice(las)
            # One in fifty is a relative and neighbour of some child, and looks them up.
            relative = rng.choice(kids) if n % 50 == 0 else None
            made = create_account(
                ctx,
                db,
                username=f"bench{n}",
                display_name=f"Sam {relative['family'] if relative else 'Bench'}",
                role=role,
                organisation=orgs[(la_id, ROLES[role])],
                home_postcode=relative["postcode"] if relative else f"LA{n % 90 + 1} 1AA",
                created_at=now - timedelta(days=365),
            )
            users.append(
                {
                    "id": made.practitioner.id,
                    "username": f"bench{n}",
                    "role": role.value,
                    "organisation_id": orgs[(la_id, ROLES[role])].id,
                    "local_authority_id": la_id,
                    "relative": relative["id"] if relative else None,
                }
            )
    return {"users": users, "children": [kid["id"] for kid in kids], "canaries": canaries}


class Views:
    """An ordinary working day's record views, drawn at random from the world."""

    def __init__(self, world: dict[str, Any], seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 (a workload, not a secret)
        self.users = world["users"]
        self.canaries = world["canaries"]
        # Nobody's work leads to a canary: only the odd look under a claim does.
        self.children = sorted(set(world["children"]) - set(self.canaries))
        self.principals = {
            u["id"]: Principal(
                user_id=u["id"],
                username=u["username"],
                role=Role(u["role"]),
                organisation_id=u["organisation_id"],
                local_authority_id=u["local_authority_id"],
                session_id="bench",
                permissions=frozenset(),
            )
            for u in self.users
        }

    def next(self) -> tuple[Principal, str, str, dict[str, Any]]:
        """(who, which child, the relationship recorded, the details)."""
        rng = self.rng
        user = rng.choice(self.users)
        child = rng.choice(self.children)
        draw = rng.random()
        if draw < 0.95:
            relationship = AccessRelationship.INVOLVED
        elif draw < 0.97:
            relationship = AccessRelationship.INVOLVED_RECENT
        else:
            relationship = AccessRelationship.SELF_CLAIMED
            if user["relative"] and rng.random() < 0.05:
                child = user["relative"]
            elif rng.random() < 0.01:
                child = rng.choice(self.canaries)
        details = {
            "level": "full",
            "fields": FIELDS_SHOWN,
            "services_shown": [rng.randrange(1, 10**6) for _ in range(2)],
        }
        return self.principals[user["id"]], child, relationship.value, details


def view_row(
    moment: datetime, who: Principal, child: str, relationship: str, details: dict[str, Any]
) -> dict[str, Any]:
    """The row ``record`` writes for a view, for the bulk history."""
    from reference_app.audit.service import canonical_details

    return {
        "occurred_at": moment,
        "tag": EventTag.CHILD_RECORD_VIEWED.value,
        "source": "10.0.0.1",
        "request_id": uuid.uuid4().hex,
        "child_id": child,
        "details": canonical_details(details),
        "outcome": Outcome.ALLOWED.value,
        "actor_id": who.user_id,
        "actor_role": who.role.value,
        "actor_organisation_id": who.organisation_id,
        "actor_local_authority_id": who.local_authority_id,
        "reason_code": "safeguarding",
        "relationship": relationship,
    }


def write_history(ctx: AppContext, world: dict[str, Any], events: int) -> None:
    """``events`` views over the hour before the clock's now, in bulk."""
    views = Views(world, seed=1)
    start = ctx.clock.now() - timedelta(hours=1)
    for first in range(0, events, 5000):
        count = min(5000, events - first)
        with ctx.sessions() as db, db.begin():
            audit_repository.append_events(
                db,
                [
                    view_row(start + timedelta(seconds=3600 * (first + i) / events), *views.next())
                    for i in range(count)
                ],
            )


# -- CPU ---------------------------------------------------------------------------------------


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


class Backends:
    """PostgreSQL backend CPU by application name: every backend's ticks when first and last
    seen (a backend that appears after the start counts from nothing)."""

    def __init__(self, engine: Engine | None, database: str) -> None:
        self.engine = engine
        self.database = database
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.name: dict[int, str] = {}
        self.started = False

    def sample(self) -> None:
        if self.engine is None:
            return
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid, application_name FROM pg_stat_activity WHERE datname = :d"),
                {"d": self.database},
            ).all()
        for pid, name in rows:
            ticks = _ticks(pid)
            if pid not in self.first:
                self.first[pid] = ticks if not self.started else 0
            self.last[pid] = ticks
            self.name[pid] = name

    def start(self) -> None:
        self.first.clear()
        self.last.clear()
        self.sample()
        self.started = True

    def cpu_seconds(self, name: str) -> float | None:
        if self.engine is None:
            return None
        ticks = sum(self.last[p] - self.first[p] for p in self.last if self.name[p] == name)
        return ticks / CLOCK_TICKS


# -- the processes of the steady phase ---------------------------------------------------------


def _worker(
    role: str,
    url: str,
    keys: dict[str, Any],
    offset: float,
    world: dict[str, Any],
    rate: int,
    ready: Any,
    go: Any,
    stop: Any,
    out: Any,
) -> None:
    ctx = context(url, keys, offset, f"cp-bench-{role}")
    counts: dict[str, int] = {"passes": 0, "events": 0, "views": 0, "alerts": 0, "suspensions": 0}
    lock = threading.Lock()
    rules: Counter[str] = Counter()

    def seal_pass() -> None:
        sealed = seal_all(ctx)
        with lock:
            counts["passes"] += 1
            counts["events"] += sealed

    def scan_pass() -> None:
        report = scan(ctx)
        with lock:
            counts["passes"] += 1
            counts["events"] += report.events
            counts["views"] += report.views
            counts["alerts"] += report.alerts
            counts["suspensions"] += report.suspensions
            rules.update(report.rules)

    ready.set()
    go.wait()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if role == "feeder":
        views = Views(world, seed=2)
        info = RequestInfo(request_id=None, source="10.0.0.1")
        sent = 0
        while not stop.is_set():
            due = min(int((time.perf_counter() - wall0) * rate) - sent, rate)
            if due <= 0:
                time.sleep(TICK_SECONDS)
                continue
            with ctx.sessions() as db, db.begin():
                for _ in range(due):
                    who, child, relationship, details = views.next()
                    record(
                        db,
                        ctx,
                        EventTag.CHILD_RECORD_VIEWED,
                        info=RequestInfo(request_id=uuid.uuid4().hex, source=info.source),
                        principal=who,
                        child_id=child,
                        reason_code="safeguarding",
                        relationship=relationship,
                        details=details,
                    )
            sent += due
        counts["events"] = sent
    else:
        task = seal_pass if role == "sealer" else scan_pass
        periodic = Periodic(f"bench-{role}", 1.0, task)
        periodic.start()
        stop.wait()
        periodic.stop()
    out.put(
        {
            "role": role,
            "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0,
            **counts,
            "rules": dict(sorted(rules.items())),
        }
    )
    ctx.engine.dispose()


def _lag(engine: Engine) -> tuple[int, int]:
    """(events not yet sealed, events not yet scanned)."""
    with engine.connect() as conn:
        unsealed = int(conn.scalar(select(func.count()).select_from(AuditPending)) or 0)
        end = conn.scalar(select(func.max(AuditLogEntry.seq)))
        position = conn.scalar(select(DetectorCursor.position).where(DetectorCursor.name == CURSOR))
    sealed_unscanned = 0 if end is None else end - (-1 if position is None else position)
    return unsealed, unsealed + sealed_unscanned


def steady(
    url: str,
    keys: dict[str, Any],
    offset: float,
    world: dict[str, Any],
    *,
    rate: int,
    seconds: float,
    drain_limit: float,
    monitor: Engine,
    backends: Backends,
) -> dict[str, Any]:
    mp = multiprocessing.get_context("spawn")
    go, feed_stop, work_stop = mp.Event(), mp.Event(), mp.Event()
    out: Any = mp.Queue()
    processes = []
    readies = []
    for role in ("feeder", "sealer", "detector"):
        ready = mp.Event()
        stop = feed_stop if role == "feeder" else work_stop
        args = (role, url, keys, offset, world, rate, ready, go, stop, out)
        processes.append(mp.Process(target=_worker, args=args, name=f"bench-{role}"))
        readies.append(ready)
    for process in processes:
        process.start()
    for ready in readies:
        if not ready.wait(120):
            raise click.ClickException("a benchmark process did not start")
    samples: list[tuple[float, int, int]] = []
    backends.start()
    go.set()
    started = time.perf_counter()
    next_backends = started + 1.0
    while time.perf_counter() - started < seconds:
        time.sleep(0.25)
        samples.append((time.perf_counter() - started, *_lag(monitor)))
        if time.perf_counter() >= next_backends:
            backends.sample()
            next_backends += 1.0
    feed_stop.set()
    stopped = time.perf_counter()
    at_end = _lag(monitor)
    drained_after: float | None = None
    while time.perf_counter() - stopped < drain_limit:
        unsealed, unscanned = _lag(monitor)
        samples.append((time.perf_counter() - started, unsealed, unscanned))
        if unsealed == 0 and unscanned == 0:
            drained_after = time.perf_counter() - stopped
            break
        time.sleep(0.25)
        backends.sample()
    work_stop.set()
    results = {}
    for _ in processes:
        result = out.get(timeout=120)
        results[result.pop("role")] = result
    for process in processes:
        process.join(30)
    backends.sample()
    events = results["feeder"]["events"]

    def per_event(role: str, name: str) -> dict[str, Any]:
        cpu = results[role]["cpu_s"]
        db_cpu = backends.cpu_seconds(f"cp-bench-{name}")
        figures: dict[str, Any] = {
            "process_cpu_s": round(cpu, 3),
            "process_cpu_ms_per_event": round(1000 * cpu / events, 4),
        }
        if db_cpu is not None:
            figures["postgresql_cpu_s"] = round(db_cpu, 3)
            figures["postgresql_cpu_ms_per_event"] = round(1000 * db_cpu / events, 4)
        figures["total_cpu_ms_per_event"] = round(1000 * (cpu + (db_cpu or 0)) / events, 4)
        return figures

    return {
        "seconds": seconds,
        "rate_target": rate,
        "events": events,
        "rate_achieved": round(events / results["feeder"]["wall_s"], 1),
        "feeder": per_event("feeder", "feeder"),
        "sealer": {
            **per_event("sealer", "sealer"),
            "passes": results["sealer"]["passes"],
            "sealed": results["sealer"]["events"],
        },
        "detector": {
            **per_event("detector", "detector"),
            "passes": results["detector"]["passes"],
            "events_read": results["detector"]["events"],
            "views_scored": results["detector"]["views"],
            "alerts": results["detector"]["alerts"],
            "suspensions": results["detector"]["suspensions"],
            "rules_fired": results["detector"]["rules"],
        },
        "lag": {
            "max_unsealed": max(s[1] for s in samples),
            "max_unscanned": max(s[2] for s in samples),
            "unsealed_when_feeder_stopped": at_end[0],
            "unscanned_when_feeder_stopped": at_end[1],
            "drained_after_s": None if drained_after is None else round(drained_after, 2),
        },
    }


# -- the phases, per backend -------------------------------------------------------------------


def catch_up(ctx: AppContext, backends: Backends) -> dict[str, Any]:
    """Seal, then scan, the history from cold; CPU per event of each."""
    figures: dict[str, Any] = {}
    for name, task in (("sealer", lambda: seal_all(ctx)), ("detector", lambda: scan(ctx).events)):
        backends.start()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        events = int(task())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        backends.sample()
        db_cpu = backends.cpu_seconds("cp-bench-catchup")
        figures[name] = {
            "events": events,
            "wall_s": round(wall, 2),
            "process_cpu_ms_per_event": round(1000 * cpu / events, 4),
        }
        if db_cpu is not None:
            figures[name]["postgresql_cpu_ms_per_event"] = round(1000 * db_cpu / events, 4)
        figures[name]["total_cpu_ms_per_event"] = round(1000 * (cpu + (db_cpu or 0)) / events, 4)
    return figures


def bare_hash(ctx: AppContext, after_seq: int, limit: int) -> dict[str, Any]:
    """Canonical JSON and SHA-256 of the steady phase's event documents, in a plain loop."""
    with ctx.sessions() as db:
        documents = [
            document_of(values)
            for seq, _event, values in audit_repository.log_in_order(db)
            if seq > after_seq and values is not None
        ][:limit]
    cpu0 = time.process_time()
    for document in documents:
        document_leaf(document)
    cpu = time.process_time() - cpu0
    return {"events": len(documents), "cpu_ms_per_event": round(1000 * cpu / len(documents), 4)}


def run_backend(
    backend: str,
    url: str,
    monitor_url: str,
    admin: Engine | None,
    database: str,
    *,
    practitioners: int,
    children: int,
    history: int,
    rate: int,
    seconds: float,
) -> dict[str, Any]:
    keys = generate_document()
    offset = working_morning()
    owner = create_engine(normalise_url(url))
    upgrade(owner)
    owner.dispose()
    ctx = context(url, keys, offset, "cp-bench-catchup")
    click.echo(f"{backend}: {practitioners} accounts, {children} children ...", err=True)
    world = build_world(ctx, practitioners, children, random.Random(0))  # noqa: S311
    click.echo(f"{backend}: {history} events of history, sealed and scanned ...", err=True)
    write_history(ctx, world, history)
    backends = Backends(admin, database)
    caught_up = catch_up(ctx, backends)
    with ctx.sessions() as db:
        after_seq = int(db.scalar(select(func.max(AuditLogEntry.seq))) or -1)
    monitor = create_engine(monitor_url) if backend == "postgresql" else _sqlite_reader(monitor_url)
    click.echo(f"{backend}: {rate} events a second for {seconds:g} s ...", err=True)
    try:
        figures = steady(
            url,
            keys,
            offset,
            world,
            rate=rate,
            seconds=seconds,
            drain_limit=120.0,
            monitor=monitor,
            backends=backends,
        )
    finally:
        monitor.dispose()
    base = bare_hash(ctx, after_seq, figures["events"])
    ctx.engine.dispose()
    feeder = figures["feeder"]["total_cpu_ms_per_event"]
    return {
        "world": {
            "practitioners": practitioners,
            "children": children,
            "history_events": history,
        },
        "catch_up": caught_up,
        "steady": figures,
        "baseline_bare_hash": base,
        "ratios": {
            "sealer_over_feeder": round(figures["sealer"]["total_cpu_ms_per_event"] / feeder, 3),
            "detector_over_feeder": round(
                figures["detector"]["total_cpu_ms_per_event"] / feeder, 3
            ),
            "sealer_process_over_bare_hash": round(
                figures["sealer"]["process_cpu_ms_per_event"] / base["cpu_ms_per_event"], 2
            ),
        },
    }


def _sqlite_reader(url: str) -> Engine:
    from reference_app.kit.db import make_engine

    return make_engine(url, read_only=True)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[tuple[str, str, Engine]]:
    """A scratch database (url, name, an admin engine); dropped after."""
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"cp_bench_background_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(normalise_url(admin_url)).set(database=name)
        yield url.render_as_string(hide_password=False), name, admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{'+changes' if dirty else ''}"


@click.command()
@click.option(
    "--admin-url",
    envvar="CONTACTPOINT_TEST_POSTGRES_URL",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="A PostgreSQL role that may create and drop databases.",
)
@click.option(
    "--backend",
    "backends",
    type=click.Choice(["postgresql", "sqlite"]),
    multiple=True,
    default=("postgresql", "sqlite"),
    show_default=True,
)
@click.option("--rate", default=1000, show_default=True, help="Events a second fed.")
@click.option("--seconds", default=45.0, show_default=True, help="How long the feeder runs.")
@click.option("--history", default=50000, show_default=True, help="Events before the run.")
@click.option("--practitioners", default=1000, show_default=True)
@click.option("--children", default=5000, show_default=True)
@click.option("--label", default="after", show_default=True, help="The run's name in the report.")
@click.option(
    "--commit",
    default=None,
    help="The commit of the code measured, when it is not this checkout's (PYTHONPATH).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    admin_url: str,
    backends: tuple[str, ...],
    rate: int,
    seconds: float,
    history: int,
    practitioners: int,
    children: int,
    label: str,
    commit: str | None,
    out: Path | None,
) -> None:
    """Measure the sealer's and the detector's CPU per audit event at a steady event rate."""
    run: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "commit": commit or _commit(),
        "machine": machine(),
        "load_average_before": list(os.getloadavg()),
        "backends": {},
    }
    sizes = {"practitioners": practitioners, "children": children, "history": history}
    for backend in backends:
        if backend == "postgresql":
            with postgres_database(admin_url) as (url, name, admin):
                run["backends"][backend] = run_backend(
                    backend, url, url, admin, name, rate=rate, seconds=seconds, **sizes
                )
        else:
            work = Path(tempfile.mkdtemp(prefix="cp-bench-background-"))
            try:
                url = f"sqlite:///{work / 'registry.db'}"
                run["backends"][backend] = run_backend(
                    backend, url, url, None, "", rate=rate, seconds=seconds, **sizes
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
    run["load_average_after"] = list(os.getloadavg())
    report: dict[str, Any] = {"benchmark": "background", "runs": {}}
    if out and out.exists():
        report = json.loads(out.read_text())
    report["command"] = "python scripts/bench_background.py --label LABEL --out FILE"
    report["runs"][label] = run
    rendered = json.dumps(report, indent=2)
    if out:
        out.write_text(rendered + "\n")
    click.echo(json.dumps(run, indent=2))


if __name__ == "__main__":
    main()
