"""The stages of an assessment, each calling its part's own Python API.

- security: every scenario of the security harness (`security_tests.engine`), with the
  registry's database for the white-box ones (the dump scan, the tamper matrix, the export
  round trip's watermark lookup);
- static: bandit over the registry's code and schemathesis over its API (the `static` group);
- load: a compressed national rollout under Locust (`loadtests.cli.run_locust`) with hidden
  harvesters and snoopers, judged by the load harness's SLO verdict;
- audit: `audit verify` over the database the scenarios ran on (`verify_instance`);
- backup: a backup sealed to a fresh age key, its bytes scanned for the population's values,
  and the restore drill (`reference_app.backup.restore.drill`);
- retention: the backup restored into a scratch copy and retention run on a controlled clock.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from reference_app.kit.progress import Progress

PASSED, FAILED, ERROR, NOT_TESTED = "passed", "failed", "error", "not_tested"
# Load generator processes, and the sessions they hold at most. The national rollout plans
# 1,248 concurrent sessions for its peak; one Locust process logging them all in beside the
# registry on two shared cores fell behind its schedule (wake-up lag p99 370-1,050 ms, the run
# invalid), and so did two (616 ms). At the compressed run's 9-12 enquiries a second and a fifth
# of the reading time, a few dozen sessions are busy at once (42 at the peak): one process
# holding at most 400 kept its schedule, dropped no arrival and spared the registry 850 logins.
# Two processes holding 200 or 400 between them dropped 4 of 1,331 arrivals (0.3 %, above the
# 0.1 % allowed), likely because each holds every other account, so an arrival of a kind whose
# sessions were busy in its process waited out its 10 s. A starved or dropped arrival still counts.
GENERATOR_PROCESSES = 1
MAX_SESSIONS = 400

# Left out of `--quick` (each waits out a limit or a clock, so together they are most of the
# suite's time); the report lists them under what was not tested.
QUICK_LEAVES_OUT: dict[str, str] = {
    "harvesting.daily-distinct-cap": "waits out two per-minute windows (88-140 s)",
    "exfiltration.expired-link-refused": "waits for a download link to expire (12 s)",
    "auth.failures-indistinguishable": "timing rounds of interleaved logins",
    "shielding.postcode-timing": "timing rounds of interleaved searches",
    "auth.credential-stuffing": "locks the harness's address out of login for 15 minutes",
    "static.schemathesis": "fuzzes every operation at 400 requests a minute for up to 4 minutes",
}


@dataclass
class StageResult:
    """One stage: its status, a one-line summary, and the figures behind it."""

    id: str
    title: str
    status: str = NOT_TESTED
    summary: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "seconds": round(self.seconds, 1),
            "details": self.details,
        }


@contextmanager
def stage(index: int, total: int, title: str, unit: str = "steps") -> Iterator[Progress]:
    """A live line for one stage: what, how far, elapsed (a bar on a terminal)."""
    progress = Progress(f"[{index}/{total}] {title}", None, unit)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            progress.update(0)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield progress
    finally:
        stop.set()
        ticker.join(timeout=5)
        progress.close()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block (the registry's settings read them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_scenarios(
    url: str,
    personas: Path,
    scenarios: Sequence[Any],
    *,
    database_url: str | None,
    source_dir: Path | None,
    on_result: Callable[[Any], None],
) -> list[Any]:
    """Run ``scenarios`` against the target after the harness's pre-flight; raise TargetError."""
    from security_tests import engine
    from security_tests.target import Target, TargetLoginBroken, preflight

    target = Target.open(url, personas, database_url=database_url, source_dir=source_dir)
    # A login the server broke on is a finding the scenarios report: run them.
    with suppress(TargetLoginBroken):
        preflight(target)
    return list(engine.run(target, scenarios, on_result=lambda _i, _n, r: on_result(r)))


def scenario_stage(result: StageResult, results: Sequence[Any], threshold: str = "low") -> None:
    """Fill ``result`` from scenario results: failed when any failed or errored."""
    from security_tests.engine import Status

    counts = {s.value: 0 for s in Status}
    for r in results:
        counts[r.status.value] += 1
    bad = counts["fail"] + counts["error"]
    # A stage whose every scenario was skipped (bandit without the target's source, say) showed
    # nothing: it is not tested, never passed.
    result.status = FAILED if bad else PASSED if counts["pass"] else NOT_TESTED
    result.summary = (
        f"{len(results)} scenarios: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} errors, {counts['skipped']} skipped"
    )
    result.details = {"counts": counts}


def verify_audit(database_url: str, keys_file: Path) -> dict[str, Any]:
    """`audit verify` over the registry at ``database_url``: the report as a dict."""
    from reference_app.audit.verify import verify_instance
    from reference_app.kit.commands import instance

    with environment(_registry_env(keys_file)), instance(database_url) as ctx:
        report = verify_instance(ctx)
    doc = report.to_dict()
    doc["ok"] = report.ok
    return doc


def _registry_env(keys_file: Path) -> dict[str, str]:
    return {"CONTACTPOINT_KEYS_FILE": str(keys_file), "CONTACTPOINT_ENVIRONMENT": "development"}


def backup_and_drill(
    database_url: str, keys_file: Path, work: Path, needles: Sequence[str]
) -> tuple[dict[str, Any], Path, Any]:
    """Back up the registry sealed to a fresh age key, scan the file's bytes for ``needles``
    (the population's values), and run the restore drill. Returns the figures, the backup file
    and the identities that open it."""
    from reference_app.backup.restore import drill
    from reference_app.backup.snapshot import write_backup
    from reference_app.kit.agefile import generate_identity, load_identities, load_recipients

    secret, public = generate_identity()
    identities = load_identities(secret)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "registry.cpb"
    out.unlink(missing_ok=True)
    with environment(_registry_env(keys_file)):
        written = write_backup(
            database_url, load_recipients(public), out, now=datetime.now(UTC), progress=False
        )
        raw = out.read_bytes()
        found = [n for n in needles if n and n.encode("utf-8") in raw]
        report = drill(database_url, identities, out, progress=False, live=False)
    tables = report.to_dict()
    return (
        {
            "bytes": len(raw),
            "tables": len(report.rows),
            "rows": sum(r.backup_rows for r in report.rows),
            "values_scanned": len(needles),
            "values_found_in_backup": len(found),
            "drill_ok": report.ok,
            "drill_failed_tables": report.failed,
            "restore_error": tables.get("restore_error"),
            "sha256": getattr(written, "sha256", None),
        },
        out,
        identities,
    )


def retention_on_clock(
    backup: Path, identities: Any, keys_file: Path, work: Path
) -> dict[str, Any]:
    """Restore ``backup`` into a scratch SQLite copy and run retention there on a controlled
    clock: today (those already 18 are archived), 19 years on (everyone is archived, and those
    archived today purged), 25 years and a day on (everyone archived six years before is
    purged), and that day again (nothing changes). Every child must be purged exactly once."""
    from reference_app.backup.restore import restore_backup
    from reference_app.config import Environment, Settings
    from reference_app.context import build_context
    from reference_app.retention.service import run

    work.mkdir(parents=True, exist_ok=True)
    scratch = work / "retention.db"
    scratch.unlink(missing_ok=True)
    url = f"sqlite:///{scratch}"
    restore_backup(url, identities, backup, progress=False)
    settings = Settings(environment=Environment.DEVELOPMENT, database_url=url, keys_file=keys_file)
    ctx = build_context(settings)
    today = date.today()
    steps = [
        ("today", today),
        ("19 years on", _years_on(today, 19)),
        ("25 years and a day on", _years_on(today, 25) + timedelta(days=1)),
        ("the same day again", _years_on(today, 25) + timedelta(days=1)),
    ]
    runs: list[dict[str, Any]] = []
    try:
        before = _children_left(ctx)
        for label, day in steps:
            report = run(ctx, as_of=day)
            runs.append(
                {
                    "step": label,
                    "as_of": day.isoformat(),
                    "archived": int(report.archived),
                    "purged": report.purged,
                    "live_checked": report.live_checked,
                }
            )
        remaining = _children_left(ctx)
    finally:
        ctx.engine.dispose()
        scratch.unlink(missing_ok=True)
    _first, archive, purge, again = runs
    ok = (
        archive["archived"] > 0
        and purge["archived"] == 0
        and again["archived"] == again["purged"] == 0
        and sum(r["purged"] for r in runs) == before
        and remaining == 0
    )
    return {"children_before": before, "runs": runs, "children_left": remaining, "ok": ok}


def _years_on(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _children_left(ctx: Any) -> int:
    from sqlalchemy import text

    with ctx.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM children")).scalar_one())


def run_load(
    url: str,
    personas: Path,
    out_dir: Path,
    *,
    profile: str,
    duration: float,
    adversaries: int,
    notes: Sequence[str],
) -> tuple[int, dict[str, Any] | None]:
    """A compressed rollout under Locust (its output to ``out_dir/locust.log``): its exit code
    and summary."""
    from loadtests.cli import run_locust

    out_dir.mkdir(parents=True, exist_ok=True)
    done = threading.Event()
    code: list[int] = []

    def locust() -> None:
        with (out_dir / "locust.log").open("w") as log:
            code.append(
                run_locust(
                    url,
                    personas,
                    out_dir,
                    profile=profile,
                    duration=duration,
                    adversaries=adversaries,
                    think_scale=0.2,
                    processes=GENERATOR_PROCESSES,
                    max_sessions=MAX_SESSIONS,
                    extra=[arg for note in notes for arg in ("--note", note)],
                    output=log,
                )
            )
        done.set()

    worker = threading.Thread(target=locust, daemon=True)
    worker.start()
    # Bounded: a Locust run that never ends is reported as a run without a summary.
    done.wait(duration + 600)
    worker.join(timeout=5)
    summary = out_dir / "summary.json"
    data = json.loads(summary.read_text()) if summary.exists() else None
    return (code[0] if code else 4), data


def load_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """The load run's verdict, SLO checks and detection figures, with no account's name."""
    from loadtests import slo as slo_module

    verdict = slo_module.evaluate(summary, slo_module.load_slo(slo_module.DEFAULT_SLO_PATH))
    detection = summary.get("detection") or {}
    strategies = [
        {"strategy": name, **row} for name, row in (detection.get("strategies") or {}).items()
    ]
    fp = detection.get("false_positives") or {}
    used, flagged = fp.get("accounts_used") or 0, fp.get("accounts_flagged") or 0
    return {
        "valid": bool(summary.get("run", {}).get("valid")),
        "checks": [c.as_dict() for c in verdict.checks],
        "breached": bool(verdict.failed),
        "recall": detection.get("recall"),
        "adversaries": detection.get("adversaries"),
        "caught": detection.get("caught"),
        "false_positive_rate": flagged / used if used else None,
        "false_positives": {k: v for k, v in fp.items() if not isinstance(v, list)},
        "strategies": strategies,
        "rate": {
            k: summary.get("rate", {}).get(k)
            for k in ("planned", "started", "achieved_ratio", "dropped")
        },
    }
