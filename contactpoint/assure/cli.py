"""`contactpoint assure`: the whole assessment, one verdict per rollout wave, one report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from contactpoint.assure import criteria as criteria_module
from contactpoint.assure import report, stages
from contactpoint.assure.stages import ERROR, FAILED, NOT_TESTED, PASSED, StageResult

# A `--quick` load run and a full one (seconds of the compressed national rollout), and the
# adversaries hidden in each: 9 plays every strategy once; 2 the naive pair, the only ones a
# one-minute run gives time to act and be caught (a sweep at a person's pace or five views 15-30 s
# apart takes minutes).
LOAD_SECONDS = {True: 60.0, False: 120.0}
ADVERSARIES = {True: 2, False: 9}
STAGE_TITLES = {
    "security": "security scenarios",
    "static": "bandit and schemathesis",
    "load": "compressed national rollout with hidden adversaries",
    "audit": "audit verify (the tamper matrix runs in the security stage)",
    "backup": "backup, restore drill and comparison",
    "retention": "retention on a controlled clock",
}


@dataclass
class Run:
    """What the stages gathered, for the verdict and the reports."""

    stages: dict[str, StageResult] = field(
        default_factory=lambda: {k: StageResult(k, t) for k, t in STAGE_TITLES.items()}
    )
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    load: dict[str, Any] | None = None
    load_summary: dict[str, Any] | None = None
    not_tested: list[dict[str, str]] = field(default_factory=list)

    def skip(self, stage: str, why: str) -> None:
        self.stages[stage].status = NOT_TESTED
        self.stages[stage].summary = why
        self.not_tested.append({"what": STAGE_TITLES[stage], "why": why})

    def facts(self) -> criteria_module.Facts:
        failed = [
            (s["id"], s["severity"]) for s in self.scenarios if s["status"] in ("fail", "error")
        ]
        load = self.load or {}
        return criteria_module.Facts(
            failed_scenarios=failed,
            stages={k: v.status for k, v in self.stages.items()},
            slo_breached=load.get("breached") if load.get("valid") else None,
            recall=load.get("recall"),
            false_positive_rate=load.get("false_positive_rate"),
            notes={k: v.summary for k, v in self.stages.items() if v.status in (ERROR, NOT_TESTED)},
        )


@click.command("assure")
@click.option(
    "--target", "url", metavar="URL", help="A deployment to assess (else the bundled one)."
)
@click.option(
    "--personas",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --target: the personas file of its synthetic population (with working logins).",
)
@click.option(
    "--load-personas",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --target: the accounts the load run logs in as, a crowd sized for the profile "
    "(`contactpoint load-accounts`) and apart from --personas [default: --personas].",
)
@click.option(
    "--database",
    metavar="URL",
    help="With --target: its database, for the white-box checks (dump scan, tamper matrix, "
    "audit verify; needs CONTACTPOINT_KEYS_FILE for audit verify).",
)
@click.option(
    "--children",
    type=click.IntRange(500, 200_000),
    default=3000,
    show_default=True,
    help="Without --target: children in the generated registry.",
)
@click.option(
    "--profile",
    type=click.Choice(["national-rollout", "steady", "ramp"]),
    default="national-rollout",
    show_default=True,
    help="The load profile, compressed into the load stage's minutes.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("assure-report"),
    show_default=True,
    help="Where report.html, report.json, junit.xml and the load run's files go.",
)
@click.option(
    "--fail-on",
    type=click.Choice(list(criteria_module.SEVERITIES)),
    help="A failed scenario at this severity or above is no-go in every wave "
    "[default: each wave's own, from the criteria].",
)
@click.option(
    "--criteria",
    "criteria_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Criteria YAML [default: the bundled contactpoint/assure/criteria.yaml].",
)
@click.option(
    "--quick",
    is_flag=True,
    help="A declared subset: the scenarios that wait out limits and clocks are left out "
    "(listed in the report as not tested) and the load run is 60 s, not 120 s.",
)
@click.option(
    "--weaken",
    multiple=True,
    metavar="CONTROL",
    help="Without --target: switch this control off in the bundled registry (a development "
    "build, to see the verdict turn; repeatable).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("assure-data"),
    show_default=True,
    help="Without --target: where the generated registry is kept between runs.",
)
def assure(
    url: str | None,
    personas: Path | None,
    load_personas: Path | None,
    database: str | None,
    children: int,
    profile: str,
    out_dir: Path,
    fail_on: str | None,
    criteria_file: Path | None,
    quick: bool,
    weaken: tuple[str, ...],
    data_dir: Path,
) -> None:
    """Assess a registry end to end and give a go/no-go per rollout wave, with evidence.

    Without --target it generates a registry on the embedded default (SQLite), serves it and
    runs every stage: the security scenarios, bandit and schemathesis, a compressed national
    rollout with hidden harvesters and snoopers, audit verify and the tamper matrix, the dump
    scan, the export round trip, a backup with its restore drill, and retention on a controlled
    clock. With --target it runs what applies to a remote system and lists the rest as not
    tested, with the reason. The verdict per wave (pilot, early adopters, national) comes from
    the declared criteria. Writes report.html, report.json and junit.xml to --out.

    \b
    Exit codes: 0 every wave go (or go with conditions); 1 a wave is no-go;
    2 bad usage; 3 no wave is no-go but one could not be judged.
    """
    if bool(url) != bool(personas):
        raise click.UsageError("give --target URL and --personas FILE together (or neither)")
    if load_personas and not url:
        raise click.UsageError(
            "--load-personas goes with --target: the bundled registry provisions its own crowd"
        )
    if database and not url:
        raise click.UsageError(
            "--database goes with --target: the bundled registry uses its own embedded database"
        )
    if weaken and url:
        raise click.UsageError("--weaken switches controls off in the bundled registry only")
    try:
        crit = criteria_module.load_criteria(criteria_file)
    except criteria_module.CriteriaError as exc:
        raise click.UsageError(str(exc)) from exc
    if fail_on:
        crit = crit.with_fail_on(fail_on)
    began = time.monotonic()
    run = Run()
    out_dir.mkdir(parents=True, exist_ok=True)
    if url and personas:
        _remote(
            run,
            url,
            personas,
            load_personas or personas,
            database,
            profile=profile,
            quick=quick,
            out_dir=out_dir,
        )
        where, mode = url, "remote"
    else:
        _reference(
            run,
            data_dir,
            children=children,
            profile=profile,
            quick=quick,
            weaken=weaken,
            out_dir=out_dir,
        )
        where, mode = "the bundled reference registry (SQLite)", "reference"
        if weaken:
            where += f", weakened: {', '.join(weaken)} off"
    verdicts = criteria_module.judge(crit, run.facts())
    code = criteria_module.exit_code(verdicts)
    doc = report.document(
        target=where,
        mode=mode,
        quick=quick,
        seconds=time.monotonic() - began,
        criteria_source=crit.source,
        verdicts=verdicts,
        exit_code=code,
        stages=[s.as_dict() for s in run.stages.values()],
        scenarios=run.scenarios,
        load=run.load,
        not_tested=run.not_tested,
    )
    report.write_json(out_dir / "report.json", doc)
    report.write_junit(out_dir / "junit.xml", doc)
    report.write_html(out_dir / "report.html", doc, run.load_summary)
    for v in verdicts:
        click.echo(f"{v.wave.id:<15} {v.verdict.value.upper()}")
        for reason in v.reasons:
            click.echo(f"{'':<15} - {reason}")
    click.echo(f"report: {out_dir / 'report.html'} ({time.monotonic() - began:.0f} s in all)")
    sys.exit(code)


def _scenarios(quick: bool, run: Run) -> tuple[list[Any], list[Any]]:
    """The security scenarios (without the static group) and the static ones."""
    from security_tests import engine

    every = engine.select(())
    chosen = []
    for sc in every:
        if quick and sc.id in stages.QUICK_LEAVES_OUT:
            run.not_tested.append(
                {
                    "what": f"scenario {sc.id}",
                    "why": f"left out of --quick: {stages.QUICK_LEAVES_OUT[sc.id]}",
                }
            )
            continue
        chosen.append(sc)
    return [s for s in chosen if s.group != "static"], [s for s in chosen if s.group == "static"]


def _security(
    run: Run,
    url: str,
    personas: Path,
    database_url: str | None,
    source: Path | None,
    quick: bool,
    index: int,
    total: int,
) -> None:
    """The security and static stages in one run of the engine, which keeps the scenarios that
    lock the harness's address out of login (credential stuffing) for the very end."""
    from security_tests.target import TargetError

    security, static = _scenarios(quick, run)
    title = "security scenarios, bandit and schemathesis"
    with stages.stage(index, total, title, "scenarios") as progress:
        began = time.monotonic()
        try:
            results = stages.run_scenarios(
                url,
                personas,
                [*security, *static],
                database_url=database_url,
                source_dir=source,
                on_result=lambda r: _seen(progress, r),
            )
        except TargetError as exc:
            for stage_id in ("security", "static"):
                result = run.stages[stage_id]
                result.status, result.summary = ERROR, f"the target could not be used: {exc}"
            return
        seconds = time.monotonic() - began
        for stage_id in ("security", "static"):
            result = run.stages[stage_id]
            mine = [r for r in results if (r.scenario.group == "static") == (stage_id == "static")]
            stages.scenario_stage(result, mine)
            result.seconds = sum(r.seconds for r in mine) if stage_id == "static" else seconds
            progress.note(f"{stage_id}: {result.summary}")
        run.scenarios.extend(r.to_dict() for r in results)
        for r in results:
            if r.status.value == "skipped":
                run.not_tested.append({"what": f"scenario {r.scenario.id}", "why": r.message})


def _seen(progress: Any, result: Any) -> None:
    """Count a finished scenario, and name it at once if it failed or errored."""
    progress.update(1)
    if result.status.value in ("fail", "error"):
        progress.note(f"{result.status.value.upper()} {result.scenario.id}: {result.message}")


def _timed(result: StageResult) -> Any:
    @contextmanager
    def block() -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        except Exception as exc:  # a stage that broke is reported, and the others still run
            result.status, result.summary = ERROR, f"{type(exc).__name__}: {exc}"[:500]
        finally:
            result.seconds = time.monotonic() - began

    return block()


def _load(
    run: Run,
    url: str,
    personas: Path,
    out_dir: Path,
    *,
    profile: str,
    quick: bool,
    notes: list[str],
    index: int,
    total: int,
) -> None:
    result = run.stages["load"]
    seconds = LOAD_SECONDS[quick]
    if quick:
        run.not_tested.append(
            {
                "what": "seven of the nine adversary strategies under load",
                "why": "left out of --quick: only the naive harvester and snooper act and are "
                "caught within its one-minute run; the sweeps at a person's pace, results-only, "
                "low-and-slow and claim-then-snoop need the full run's minutes",
            }
        )
    with stages.stage(index, total, result.title) as progress, _timed(result):
        code, summary = stages.run_load(
            url,
            personas,
            out_dir / "load",
            profile=profile,
            duration=seconds,
            adversaries=ADVERSARIES[quick],
            notes=notes,
        )
        if summary is None:
            result.status, result.summary = (
                ERROR,
                f"the load run ended without a summary (exit {code})",
            )
            return
        facts = stages.load_facts(summary)
        run.load, run.load_summary = facts, summary
        result.details = {k: facts[k] for k in ("rate", "recall", "false_positive_rate", "valid")}
        if not facts["valid"]:
            result.status = ERROR
            why = [
                c["detail"]
                for c in facts["checks"]
                if c["kind"] == "validity" and c["outcome"] != "pass"
            ]
            result.summary = "the run was invalid: " + ("; ".join(why) or "see load/summary.json")
        else:
            result.status = FAILED if facts["breached"] else PASSED
            recall = facts["recall"]
            result.summary = (
                f"{seconds:.0f} s compressed {profile}: "
                + ("an SLO breached" if facts["breached"] else "every judged SLO held")
                + (
                    f"; {facts['caught']} of {facts['adversaries']} adversaries caught"
                    if recall is not None
                    else ""
                )
            )
        progress.note(result.summary)


def _needles(template: Path) -> list[str]:
    """The population's personal values a backup must not show: the sampled children's
    identifiers, full names, dates of birth and postcodes. Seven characters at least: a shorter
    string turns up in megabytes of ciphertext by chance (a four-letter name about once in 500
    tries per 8 MB)."""
    values: set[str] = set()
    sample = template / "children_sample.jsonl"
    if sample.exists():
        for line in sample.read_text(encoding="utf-8").splitlines()[:200]:
            row = json.loads(line)
            values.update(
                str(row[k]) for k in ("child_id", "date_of_birth", "postcode") if row.get(k)
            )
            if row.get("given_name") and row.get("family_name"):
                values.add(f"{row['given_name']} {row['family_name']}")
    return sorted(v for v in values if len(v) >= 7)


def _reference(
    run: Run,
    data_dir: Path,
    *,
    children: int,
    profile: str,
    quick: bool,
    weaken: tuple[str, ...],
    out_dir: Path,
) -> None:
    from loadtests.cli import crowd_personas, crowd_size, reference_settings
    from loadtests.model import profile_from_name
    from security_tests import local
    from security_tests.cli import default_source

    total = 6
    with stages.stage(
        1, total, f"the bundled registry ({children:,} children, generated once)"
    ) as p:
        template = local.prepare(
            (data_dir / f"template-{children}").resolve(), children=children, personas_per_role=4
        )
        plan = profile_from_name(profile, duration_s=LOAD_SECONDS[quick])
        crowd = crowd_personas(
            template, crowd_size(plan, ADVERSARIES[quick], stages.GENERATOR_PROCESSES)
        )
        p.note(f"ready in {template}")
    runs = (data_dir / "runs" / time.strftime("%Y%m%dT%H%M%S")).resolve()
    with local.serve(template, runs / "attack", disabled=weaken) as registry:
        _security(
            run,
            registry.url,
            registry.personas,
            registry.database_url,
            default_source(),
            quick,
            2,
            total,
        )
    keys = registry.data_dir / "keys.json"
    result = run.stages["audit"]
    with stages.stage(3, total, result.title) as p, _timed(result):
        doc = stages.verify_audit(registry.database_url, keys)
        result.status = PASSED if doc["ok"] else FAILED
        result.summary = (
            f"{doc.get('entries')} log entries, {doc.get('checkpoints')} signed checkpoints: "
            + ("the log verifies" if doc["ok"] else f"{len(doc.get('findings', []))} finding(s)")
        )
        result.details = {k: v for k, v in doc.items() if k != "findings"} | {
            "findings": [f.get("kind") for f in doc.get("findings", [])]
        }
        p.note(result.summary)
    backup, identities = None, None
    result = run.stages["backup"]
    with stages.stage(4, total, result.title) as p, _timed(result):
        figures, backup, identities = stages.backup_and_drill(
            registry.database_url, keys, runs / "backup", _needles(template)
        )
        ok = figures["drill_ok"] and figures["values_found_in_backup"] == 0
        result.status = PASSED if ok else FAILED
        result.summary = (
            f"{figures['rows']:,} rows in {figures['tables']} tables, age-encrypted "
            f"({figures['bytes']:,} bytes); {figures['values_found_in_backup']} of "
            f"{figures['values_scanned']} sampled personal values readable in the file; "
            "restore drill "
            + ("matched the source in every table" if figures["drill_ok"] else "FAILED")
        )
        result.details = figures
        p.note(result.summary)
    result = run.stages["retention"]
    if backup is None:
        run.skip("retention", "the backup it restores from was not made")
    else:
        with stages.stage(5, total, result.title) as p, _timed(result):
            figures = stages.retention_on_clock(backup, identities, keys, runs / "retention")
            result.status = PASSED if figures["ok"] else FAILED
            steps = "; ".join(
                f"{r['step']}: {r['archived']} archived, {r['purged']} purged"
                for r in figures["runs"]
            )
            result.summary = (
                f"{figures['children_before']:,} children; {steps}; {figures['children_left']} left"
            )
            result.details = figures
            p.note(result.summary)
    settings = reference_settings(time.time())
    notes = [
        "reference registry: working hours read in "
        f"{settings['CONTACTPOINT_WORKING_HOURS_TIMEZONE']} so the run falls in a working morning"
    ]
    with local.serve(template, runs / "load", settings=settings, disabled=weaken) as loaded:
        _load(
            run,
            loaded.url,
            crowd,
            out_dir,
            profile=profile,
            quick=quick,
            notes=notes,
            index=6,
            total=total,
        )


def _remote(
    run: Run,
    url: str,
    personas: Path,
    load_personas: Path,
    database: str | None,
    *,
    profile: str,
    quick: bool,
    out_dir: Path,
) -> None:
    """Assess a deployment from outside: the load run first, then the security scenarios,
    then audit verify over everything both wrote.

    The load goes first because the security stage ends with the scenarios that leave the
    harness's address throttled (a credential-stuffing run locks it out of login for 15
    minutes), and a load after them would be refused at every login. Its hidden adversaries are
    suspended as they are caught; they come from --load-personas, so the security stage's
    personas are untouched when it starts.
    """
    import os

    total = 3
    _load(
        run,
        url,
        load_personas,
        out_dir,
        profile=profile,
        quick=quick,
        notes=[],
        index=1,
        total=total,
    )
    _security(run, url, personas, database, None, quick, 2, total)
    keys = os.environ.get("CONTACTPOINT_KEYS_FILE")
    result = run.stages["audit"]
    if database and keys:
        with stages.stage(3, total, result.title) as p, _timed(result):
            doc = stages.verify_audit(database, Path(keys))
            result.status = PASSED if doc["ok"] else FAILED
            result.summary = "the log verifies" if doc["ok"] else "the log does not verify"
            p.note(result.summary)
    else:
        run.skip(
            "audit",
            "needs the target's --database and its keys file (CONTACTPOINT_KEYS_FILE) for the "
            "audit public keys",
        )
    for stage_id in ("backup", "retention"):
        run.skip(
            stage_id,
            "runs on the registry's own host with its keys (`contactpoint backup`, "
            "`contactpoint restore --drill`, `contactpoint retention --as-of`); a remote "
            "assessment cannot make or restore a backup",
        )
