"""`contactpoint load`: the national-rollout load test under Locust, with an SLO verdict.

The run itself is Locust (`locust -f loadtests/locustfile.py`), started as its own process: Locust
patches the whole interpreter for gevent when imported, which this CLI's process must not be.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import httpx

if TYPE_CHECKING:
    from loadtests.model import Profile
    from loadtests.workload import Account

EXIT_PASS, EXIT_BREACH, EXIT_USAGE, EXIT_INVALID, EXIT_CANNOT_RUN = 0, 1, 2, 3, 4
# The reference registry's population, and the children in each account's caseload.
REFERENCE_CHILDREN = 3000
REFERENCE_CASELOAD = 20
# A `--reference` run's registry starts its day at this local hour (09:00, a working morning),
# whatever the hour the run is started at: see `working_hours_zone`.
WORKING_MORNING_HOUR = 9
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# The reference registry under load keeps production quotas and harvesting thresholds; the
# per-address limits are raised because the whole crowd comes from one generator address.
REFERENCE_LOAD_SETTINGS = {
    "CONTACTPOINT_LIMIT_SOURCE_PER_MINUTE": "1000000",
    "CONTACTPOINT_LOGIN_MAX_FAILURES_SOURCE": "1000",
    # The load simulates a working Monday; a run on a weekend must not score every view as out of
    # hours.
    "CONTACTPOINT_WORKING_DAYS": "7",
    # The generator may vary a request's source with X-Forwarded-For: believed from loopback only.
    "CONTACTPOINT_TRUSTED_PROXIES": '["127.0.0.1/32"]',
    # A few accounts an organisation stand in for its whole workforce, and a load run packs many
    # days' enquiries into an hour; the generated accounts are all new, so none brings the
    # per-colleague allowance. The organisation and LA daily counts are an established
    # workforce's (hundreds of colleagues); per-account quotas and sweeps stay as in production.
    "CONTACTPOINT_LIMIT_ORGANISATION_CHILDREN_PER_DAY": "5000",
    "CONTACTPOINT_LIMIT_LOCAL_AUTHORITY_CHILDREN_PER_DAY": "100000",
}


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", value.strip())
    if not match:
        raise click.BadParameter("give seconds, or a number with s, m or h (e.g. 90s, 10m)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@click.command("load")
@click.option("--target", "url", metavar="URL", help="Base URL of the registry under load.")
@click.option(
    "--reference",
    is_flag=True,
    help="Generate (once, in --reference-dir) and serve a small local reference registry.",
)
@click.option(
    "--reference-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".contactpoint-load"),
    show_default=True,
)
@click.option(
    "--personas",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Accounts to load with (generator personas.json or `contactpoint load-accounts`); "
    "children_sample.jsonl and canaries.jsonl are read from beside it.",
)
@click.option(
    "--profile",
    type=click.Choice(["national-rollout", "steady", "ramp"]),
    default="national-rollout",
    show_default=True,
)
@click.option("--duration", callback=_duration, help="Run length: seconds, or 90s, 10m, 1h.")
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="Enquiries a second (steady, ramp)."
)
@click.option(
    "--intensity",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiple of the modelled load.",
)
@click.option(
    "--slo",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SLO YAML [default: the bundled national-rollout objectives].",
)
@click.option(
    "--abort-on-breach", is_flag=True, help="Stop the run as soon as a judged objective breaches."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("load-report"),
    show_default=True,
    help="Reports: summary.json, report.html, charts, junit.xml, Locust CSV and HTML.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also copy the summary JSON here.",
)
@click.option(
    "--junit",
    "junit_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also copy the JUnit XML here.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Generator processes on this host (a Locust master and N workers when N > 1).",
)
@click.option(
    "--expect-workers",
    type=click.IntRange(0, 1024),
    default=0,
    help="Run as master for this many workers started elsewhere (see README).",
)
@click.option(
    "--adversaries",
    type=click.IntRange(0, 1000),
    default=0,
    show_default=True,
    help="Accounts that harvest or snoop, hidden in the crowd.",
)
@click.option("--think-scale", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option(
    "--max-sessions", type=click.IntRange(min=0), default=0, help="Cap on concurrent sessions."
)
@click.option(
    "--max-generator-cpu",
    type=click.FloatRange(min=0, min_open=True),
    default=90.0,
    show_default=True,
    help="A generator process busier than this (% of a core) makes the run invalid.",
)
@click.option(
    "--max-lag-ms",
    type=click.FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="Scheduler wake-up lag (p99) beyond this makes the run invalid.",
)
@click.option(
    "--max-starved",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Share of arrivals the harness may starve of a session (a busy crowd, no account of "
    "the persona) before the run is invalid.",
)
@click.option(
    "--late-after",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Seconds after its intended start a request counts as late.",
)
@click.option(
    "--max-queue",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds an enquiry may wait for a free session before it is dropped.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds for sessions to log in before the first arrival.",
)
@click.option("--seed", type=int, default=2009, show_default=True)
def load(
    url: str | None,
    reference: bool,
    reference_dir: Path,
    personas: Path | None,
    profile: str,
    duration: float | None,
    rate: float | None,
    intensity: float,
    slo: Path | None,
    abort_on_breach: bool,
    out_dir: Path,
    json_out: Path | None,
    junit_out: Path | None,
    processes: int,
    expect_workers: int,
    adversaries: int,
    think_scale: float,
    max_sessions: int,
    max_generator_cpu: float,
    max_lag_ms: float,
    max_starved: float,
    late_after: float,
    max_queue: float,
    warmup: float,
    seed: int,
) -> None:
    """Load a registry with the national-rollout workload and judge it against SLOs.

    Arrivals follow the profile's planned rate (an open model): latency is measured from each
    request's intended start as well as from its send. Exit codes: 0 SLOs met; 1 an SLO breached
    or the run aborted on a breach; 2 bad usage; 3 invalid run (the load generator saturated, the
    harness starved the run of sessions, or too few samples to judge); 4 the run could not go
    ahead (target unreachable, no login).
    """
    from loadtests import model
    from loadtests import slo as slo_module
    from loadtests.workload import ENDPOINTS, WorkloadError, load_workload

    if reference == bool(url):
        raise click.UsageError("give --target URL, or --reference for a local reference registry")
    if url and personas is None:
        raise click.UsageError("--personas FILE is required with --target")
    try:
        plan = model.profile_from_name(profile, duration_s=duration, rate=rate, intensity=intensity)
        slo_module.check_workload(
            slo_module.load_slo(slo or slo_module.DEFAULT_SLO_PATH),
            endpoints=ENDPOINTS,
            personas=model.PERSONA_KINDS,
        )
        if personas is not None:
            _warn_without_caseloads(load_workload(personas).accounts)
    except (ValueError, WorkloadError, slo_module.SloError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    crowd = crowd_size(plan, adversaries, max(processes, expect_workers))
    with _target(url, reference, reference_dir, personas, crowd) as (target, personas_file, notes):
        if not _reachable(target):
            click.echo(f"error: the target {target} does not answer /readyz", err=True)
            sys.exit(EXIT_CANNOT_RUN)
        code = run_locust(
            target,
            personas_file,
            out_dir,
            profile=profile,
            duration=duration,
            rate=rate,
            intensity=intensity,
            slo=slo,
            abort_on_breach=abort_on_breach,
            processes=processes,
            expect_workers=expect_workers,
            adversaries=adversaries,
            think_scale=think_scale,
            max_sessions=max_sessions,
            seed=seed,
            extra=[
                "--max-generator-cpu",
                str(max_generator_cpu),
                "--max-lag-ms",
                str(max_lag_ms),
                "--max-starved",
                str(max_starved),
                "--late-after",
                str(late_after),
                "--max-queue",
                str(max_queue),
                "--warmup",
                str(warmup),
                *(arg for note in notes for arg in ("--note", note)),
            ],
        )
    summary = out_dir / "summary.json"
    if not summary.exists():
        click.echo("error: the run ended without a summary (see the log above)", err=True)
        sys.exit(EXIT_CANNOT_RUN)
    for source, copy in ((summary, json_out), (out_dir / "junit.xml", junit_out)):
        if copy is not None:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    data = json.loads(summary.read_text())
    if data["rate"]["started"] == 0 and data["run"]["valid"]:
        code = EXIT_CANNOT_RUN
    # Locust prints its own tables as it exits: the verdict comes last, after them.
    from loadtests.report import render_verdict_block

    click.echo(render_verdict_block(data))
    sys.exit(code)


def run_locust(
    target: str,
    personas: Path,
    out_dir: Path,
    *,
    profile: str = "national-rollout",
    duration: float | None = None,
    rate: float | None = None,
    intensity: float = 1.0,
    slo: Path | None = None,
    abort_on_breach: bool = False,
    processes: int = 1,
    expect_workers: int = 0,
    adversaries: int = 0,
    think_scale: float = 1.0,
    max_sessions: int = 0,
    seed: int = 2009,
    extra: list[str] | None = None,
    output: IO[str] | None = None,
) -> int:
    """Run Locust headless with the load harness's options; return its exit code (the verdict).

    Its output goes to ``output`` (both streams) when given, else to this process's.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (out_dir / "summary.json").unlink()
    args = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", target,
        "--csv", str(out_dir / "locust"), "--html", str(out_dir / "locust.html"),
        "--only-summary", "--stop-timeout", "2",
        "--personas", str(personas), "--load-profile", profile, "--out", str(out_dir),
        "--intensity", str(intensity), "--adversaries", str(adversaries),
        "--think-scale", str(think_scale), "--seed", str(seed), "--target-label", target,
    ]  # fmt: skip
    if duration:
        args += ["--duration", str(duration)]
    if rate:
        args += ["--rate", str(rate)]
    if slo is not None:
        args += ["--slo", str(slo)]
    if abort_on_breach:
        args += ["--abort-on-breach"]
    if max_sessions:
        args += ["--max-sessions", str(max_sessions)]
    if expect_workers:
        args += ["--master", "--expect-workers", str(expect_workers)]
    elif processes > 1:
        args += ["--processes", str(processes)]
    args += extra or []
    streams: dict[str, Any] = {"stdout": output, "stderr": subprocess.STDOUT} if output else {}
    return subprocess.run(args, check=False, **streams).returncode  # noqa: S603 (this project's locustfile)


def _warn_without_caseloads(accounts: list[Account]) -> None:
    bare = [a for a in accounts if not a.caseload and a.kind != "data_manager"]
    if bare:
        click.echo(
            f"warning: {len(bare)} of {len(accounts)} accounts have no caseload: they look up "
            "children their service does not work with, which the registry may score as "
            "snooping (false positives). Load with a crowd with caseloads: the "
            "load-personas.json `contactpoint serve --demo` writes, or `contactpoint "
            "load-accounts`.",
            err=True,
        )


def demo_crowd(data_dir: Path) -> Path:
    """Load personas for a `serve --demo` registry: a crowd with caseloads for the default
    national-rollout profile at intensity 1 on one generator process."""
    from loadtests.model import profile_from_name

    profile = profile_from_name("national-rollout", duration_s=None)
    return crowd_personas(data_dir, crowd_size(profile))


def crowd_size(profile: Profile, adversaries: int = 0, processes: int = 1) -> dict[str, int]:
    """Accounts of each role a crowd needs to hold the profile's planned peak of sessions.

    Each persona kind's most planned sessions in any second (the planned sessions x its share of
    the mix then), and at least one for each generator process (each draws arrivals of every
    kind), for each of the kinds a role stands for (health accounts alternate between GP
    practice staff and health visitors, so the role holds the larger for each), plus the
    adversaries' share, since they are taken from the same accounts.
    """
    from loadtests.model import KIND_ROLES, peak_sessions_by_kind

    most = {kind: max(n, processes) for kind, n in peak_sessions_by_kind(profile).items()}
    roles: dict[str, int] = {}
    for role in sorted(set(KIND_ROLES.values())):
        kinds = [k for k, r in KIND_ROLES.items() if r == role]
        roles[role] = len(kinds) * max(most[k] for k in kinds)
    total = sum(roles.values()) or 1
    return {role: n + math.ceil(adversaries * n / total) for role, n in roles.items()}


def working_hours_zone(now: float) -> str:
    """A fixed-offset time zone in which `now` falls in the 09:00 hour, a working morning.

    The reference registry's detector reads the time of day in this zone, so the simulated day's
    views score as the working hours they stand for whatever the hour a run starts at (the zones
    run from UTC-12 to UTC+14; `Etc/GMT-3` is three hours ahead of UTC).
    """
    hour = time.gmtime(now).tm_hour
    offset = (WORKING_MORNING_HOUR - hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def reference_settings(now: float) -> dict[str, str]:
    """The reference registry's settings under load, its working hours starting at `now`."""
    zone = working_hours_zone(now)
    return {**REFERENCE_LOAD_SETTINGS, "CONTACTPOINT_WORKING_HOURS_TIMEZONE": zone}


def crowd_personas(template: Path, crowd: dict[str, int]) -> Path:
    """A local registry's load personas for `crowd` (accounts by role), provisioned once.

    `template` is a registry's data directory (`registry.db`, `keys.json`: the reference
    template, or `serve --demo`'s). The personas file is kept there with the sizes it holds; a
    run that needs no more of any role reuses it, a larger one provisions afresh (and replaces
    it). The accounts' passwords are hashed with OWASP's Argon2id minimum (m=19 MiB, t=2).
    """
    path, sizes = template / "load-personas.json", template / "load-personas.sizes.json"
    if path.exists() and sizes.exists():
        held = json.loads(sizes.read_text(encoding="utf-8"))
        if all(held.get(role, 0) >= n for role, n in crowd.items()):
            return path
        crowd = {role: max(n, held.get(role, 0)) for role, n in crowd.items()}
    from loadtests.accounts import provision
    from reference_app.config import Environment, Settings
    from security_tests.local import FAST_ARGON2

    settings = Settings(
        environment=Environment.DEVELOPMENT,
        database_url=f"sqlite:///{template / 'registry.db'}",
        keys_file=template / "keys.json",
        argon2_time_cost=int(FAST_ARGON2["CONTACTPOINT_ARGON2_TIME_COST"]),
        argon2_memory_kib=int(FAST_ARGON2["CONTACTPOINT_ARGON2_MEMORY_KIB"]),
        argon2_parallelism=int(FAST_ARGON2["CONTACTPOINT_ARGON2_PARALLELISM"]),
    )
    click.echo(f"provisioning a crowd of {sum(crowd.values())} accounts ...", err=True)
    started = time.monotonic()
    # The registry's own personas (the security harness's, the demo's) keep their credentials.
    own = template / "personas.json"
    keep = frozenset(
        str(p["username"]) for p in (json.loads(own.read_text()) if own.exists() else [])
    )
    got = provision(
        settings, path, las=152, caseload=REFERENCE_CASELOAD, counts=crowd, workers=2, keep=keep
    )
    sizes.write_text(json.dumps(got["by_role"], sort_keys=True), encoding="utf-8")
    click.echo(
        f"crowd: {got['accounts']} accounts ({got['colleagues_added']} colleagues added), "
        f"{got['with_caseload']} with caseloads, in {time.monotonic() - started:.0f} s",
        err=True,
    )
    return path


@contextlib.contextmanager
def _target(
    url: str | None,
    reference: bool,
    reference_dir: Path,
    personas: Path | None,
    crowd: dict[str, int],
) -> Iterator[tuple[str, Path, list[str]]]:
    if url:
        assert personas is not None
        yield url, personas, []
        return
    from security_tests.local import prepare, serve

    click.echo(f"preparing the reference registry in {reference_dir} ...", err=True)
    template = prepare(reference_dir / "template", children=REFERENCE_CHILDREN, personas_per_role=4)
    crowd_file = personas or crowd_personas(template, crowd)
    settings = reference_settings(time.time())
    zone = settings["CONTACTPOINT_WORKING_HOURS_TIMEZONE"]
    notes = [
        f"reference registry: its working hours are read in {zone}, where the run starts at "
        f"{WORKING_MORNING_HOUR:02d}:00-{WORKING_MORNING_HOUR:02d}:59, so the simulated day's "
        "views fall in working hours whatever the hour it is run at (a deployment keeps its "
        "own zone)",
    ]
    with (
        tempfile.TemporaryDirectory(prefix="contactpoint-load-") as work,
        serve(template, Path(work), settings=settings) as registry,
    ):
        click.echo(f"serving it at {registry.url}", err=True)
        click.echo(f"note: {notes[0]}", err=True)
        yield registry.url, crowd_file, notes


def _reachable(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@click.command("load-accounts")
@click.option("--database", required=True, metavar="URL", help="The registry's database.")
@click.option(
    "--keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The registry's keys file [default: CONTACTPOINT_KEYS_FILE].",
)
@click.option(
    "--per-role",
    type=click.IntRange(1, 10000),
    default=10,
    show_default=True,
    help="Accounts per role and LA.",
)
@click.option(
    "--las",
    type=click.IntRange(1, 152),
    default=20,
    show_default=True,
    help="How many LAs (the largest by staff).",
)
@click.option(
    "--caseload",
    type=click.IntRange(0, 500),
    default=20,
    show_default=True,
    help="Children per account's service.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The personas file to write (mode 0600).",
)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
def load_accounts(
    database: str,
    keys: Path | None,
    per_role: int,
    las: int,
    caseload: int,
    out: Path,
    workers: int,
) -> None:
    """Give generated practitioners credentials and caseloads, for a load test of the registry."""
    from loadtests.accounts import provision
    from reference_app.config import Settings

    env = dict(os.environ)
    if keys is not None:
        env["CONTACTPOINT_KEYS_FILE"] = str(keys)
    settings = Settings(
        database_url=database,
        keys_file=Path(env["CONTACTPOINT_KEYS_FILE"]) if "CONTACTPOINT_KEYS_FILE" in env else None,
    )
    report = provision(
        settings, out, per_role=per_role, las=las, caseload=caseload, workers=workers
    )
    click.echo(json.dumps(report, indent=2))
