"""`contactpoint attack`: run the breach and access-abuse scenarios against a registry."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from reference_app.kit.exits import ExitCode
from security_tests import engine, report
from security_tests.html import write_html
from security_tests.target import (
    Target,
    TargetError,
    TargetLoginBroken,
    TargetUnreachable,
    preflight,
)

EXIT_OK = int(ExitCode.PASS)
EXIT_FINDINGS = int(ExitCode.FOUND)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_UNREACHABLE = int(ExitCode.UNREACHABLE)


def _severity(_ctx: click.Context, _param: click.Parameter, value: str) -> engine.Severity:
    return engine.Severity[value.upper()]


@click.command("attack")
@click.option("--target", "url", metavar="URL", help="Base URL of the registry under test.")
@click.option(
    "--personas",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="personas.json from `contactpoint generate` (its sample and canary files beside it).",
)
@click.option(
    "--only",
    multiple=True,
    metavar="GROUP|ID",
    help="Run one group or scenario (repeatable). Groups: " + ", ".join(engine.GROUPS) + ".",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the JSON report.")
@click.option("--junit", "junit_out", type=click.Path(path_type=Path), help="Write JUnit XML.")
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    help="Write a self-contained HTML report (by OWASP and ASVS, evidence folded).",
)
@click.option(
    "--fail-on",
    type=click.Choice([s.label for s in engine.Severity]),
    default="low",
    show_default=True,
    callback=_severity,
    help="Exit 1 when a scenario of this severity or above fails or errors.",
)
@click.option(
    "--database",
    metavar="URL",
    help="The reference registry's database, for white-box checks (dump, audit chain, tampering).",
)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Source tree for the static checks [default: the installed reference_app].",
)
@click.option(
    "--alert-within",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds within which an alert must reach the LA's management team.",
)
@click.option("--insecure", is_flag=True, help="Do not verify the target's TLS certificate.")
@click.option(
    "--reference",
    is_flag=True,
    help="Attack the bundled reference registry: generate a small population into --data-dir "
    "(once), serve a fresh copy of it locally and give --target, --personas and --database.",
)
@click.option(
    "--weaken",
    multiple=True,
    metavar="CONTROL",
    help="With --reference: switch this control off (a development build; repeatable).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("attack-data"),
    show_default=True,
    help="With --reference: where the generated registry is kept.",
)
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option(
    "--coverage", is_flag=True, help="Print the OWASP/ASVS coverage table (Markdown) and exit."
)
def attack(
    url: str | None,
    personas: Path | None,
    only: tuple[str, ...],
    json_out: Path | None,
    junit_out: Path | None,
    html_out: Path | None,
    fail_on: engine.Severity,
    database: str | None,
    source: Path | None,
    alert_within: float,
    insecure: bool,
    reference: bool,
    weaken: tuple[str, ...],
    data_dir: Path,
    list_only: bool,
    coverage: bool,
) -> None:
    """Run breach and access-abuse scenarios against a registry and give a verdict with evidence.

    Each scenario maps to OWASP API Security Top 10 2023 and ASVS 5.0 ids and has a severity; its
    result is pass, fail, error or skipped (with the reason), with the redacted requests and
    responses that prove it. Before the first scenario it checks, in seconds, that the target is
    ready (/readyz) and that one persona of each role logs in.

    \b
    Exit codes: 0 nothing at or above --fail-on failed; 1 something did;
    2 bad usage (no target, unreadable personas or personas that cannot log in, unknown --only);
    4 the target does not answer or is not ready.
    """
    try:
        scenarios = engine.select(only)
    except KeyError as exc:
        raise click.UsageError(f"--only {exc.args[0]}: no such group or scenario") from exc
    if coverage:
        from security_tests.coverage import table

        click.echo(table(), nl=False)
        return
    if list_only:
        for sc in scenarios:
            click.echo(
                f"{sc.id:<42} {sc.severity.label:<8} {' '.join(sc.owasp):<22} "
                f"ASVS {' '.join(sc.asvs):<16} {sc.title}"
            )
        return
    where = _where(url, personas, database, reference=reference, weaken=weaken, data_dir=data_dir)
    with where as (target_url, personas_file, database_url):
        _attack(
            target_url,
            personas_file,
            scenarios,
            json_out=json_out,
            junit_out=junit_out,
            html_out=html_out,
            fail_on=fail_on,
            database=database_url,
            source=source,
            alert_within=alert_within,
            insecure=insecure,
        )


@contextmanager
def _where(
    url: str | None,
    personas: Path | None,
    database: str | None,
    *,
    reference: bool,
    weaken: tuple[str, ...],
    data_dir: Path,
) -> Iterator[tuple[str, Path, str | None]]:
    """The target's URL, personas file and database: as given, or a served reference copy."""
    if not reference:
        if not url or not personas:
            raise click.UsageError("give --target URL and --personas FILE (or --reference)")
        yield url, personas, database
        return
    if url or personas:
        raise click.UsageError("--reference serves its own target: drop --target/--personas")
    from security_tests import local

    click.echo(f"preparing the reference registry in {data_dir} ...", err=True)
    template = local.prepare(data_dir / "template")
    run_dir = data_dir / "runs" / time.strftime("%Y%m%dT%H%M%S")
    with local.serve(template, run_dir, disabled=weaken) as registry:
        if weaken:
            click.echo(f"weakened build: {', '.join(weaken)} switched off", err=True)
        yield registry.url, registry.personas, database or registry.database_url


def _attack(
    url: str,
    personas: Path,
    scenarios: list[engine.Scenario],
    *,
    json_out: Path | None,
    junit_out: Path | None,
    html_out: Path | None,
    fail_on: engine.Severity,
    database: str | None,
    source: Path | None,
    alert_within: float,
    insecure: bool,
) -> None:
    try:
        target = Target.open(
            url,
            personas,
            database_url=database,
            source_dir=source or default_source(),
            verify_tls=not insecure,
            alert_within=alert_within,
        )
    except TargetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"pre-flight: {target.url}/readyz and one login per persona role ...", err=True)
    try:
        roles = preflight(target)
    except TargetLoginBroken as exc:
        # A login the server broke on is a finding the scenarios report; run them.
        click.echo(f"pre-flight: {exc}", err=True)
    except TargetUnreachable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except TargetError as exc:
        click.echo(f"error: {exc} (is --personas this target's?)", err=True)
        sys.exit(EXIT_USAGE)
    else:
        click.echo(f"pre-flight: ready; logged in as {', '.join(roles)}", err=True)
    click.echo(f"attacking {target.url} with {len(scenarios)} scenarios", err=True)
    began = time.perf_counter()
    results = engine.run(
        target,
        scenarios,
        on_result=lambda i, n, r: click.echo(report.line(i, n, r), err=True),
        on_wait=lambda note: click.echo(f"... {note}", err=True),
    )
    seconds = time.perf_counter() - began
    failed = engine.failing(results, fail_on)
    click.echo(report.summary(results, fail_on, seconds))
    click.echo(f"verdict: {report.verdict(results, fail_on).upper()}")
    doc = report.document(results, target=target.url, threshold=fail_on, seconds=seconds)
    if json_out:
        report.write_json(json_out, doc)
    if html_out:
        write_html(html_out, doc)
    if junit_out:
        report.write_junit(junit_out, results, target=target.url, seconds=seconds)
    sys.exit(EXIT_FINDINGS if failed else EXIT_OK)


def default_source() -> Path | None:
    """The installed reference registry's source tree, scanned by the static checks."""
    import reference_app

    return Path(reference_app.__file__).parent
