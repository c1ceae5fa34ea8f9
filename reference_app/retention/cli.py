"""`contactpoint retention`: archive at 18, purge six years later; safe to run again."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any

import click

from reference_app.kit.commands import DATABASE, instance

# Only light imports at module level: this module is loaded whenever `contactpoint` starts.

EXIT_REFUSED = 1


class _Bar:
    """Progress on stderr: a bar on a terminal, a line per phase otherwise."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, phase: str, total: int) -> None:
        from tqdm import tqdm

        click.echo(f"{phase}: {total:,} record(s) to check", err=True)
        self._bar = tqdm(
            total=total, desc=phase, unit="rec", file=sys.stderr, disable=not sys.stderr.isatty()
        )

    def advance(self, rows: int) -> None:
        self._bar.update(rows)

    def end(self) -> None:
        self._bar.close()


def _summary(report: Any) -> str:
    if report.dry_run:
        return (
            f"dry run as of {report.as_of}: would archive {report.archived:,} and purge "
            f"{report.purged:,} (nothing changed)"
        )
    if not report.changed:
        return f"nothing to do as of {report.as_of}: no record due for archiving or purging"
    return (
        f"as of {report.as_of}: archived {report.archived:,} of {report.live_checked:,} live "
        f"records; purged {report.purged:,} children and {report.carers_purged:,} carers "
        f"in {report.seconds['purge'] + report.seconds['archive']:.1f} s (run {report.run_id})"
    )


@click.command()
@DATABASE
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Apply the rules as on this day (default: today). A later day than today is refused "
    "outside development and test builds.",
)
@click.option("--dry-run", is_flag=True, help="Count what is due; change nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Records per transaction: an interrupted run keeps its whole batches.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def retention(
    database: str | None, as_of: datetime | None, dry_run: bool, batch_size: int, as_json: bool
) -> None:
    """Archive every child who has turned 18 and purge children archived six or more years ago.

    Archived records are visible to the owning LA's data managers only. Purging deletes the
    child, its carer links, involvements, canary row and change requests, and carers linked to
    no other child; the audit trail keeps an event for each archive and purge. Each batch
    commits on its own, so an interrupted run resumes where it stopped when run again, and a
    second run changes nothing. Progress goes to stderr.

    Exit codes: 0 done (or nothing to do), 1 refused (e.g. a future --as-of in production),
    2 bad usage or configuration.
    """
    from reference_app.retention.service import RetentionRefused, run

    day: date | None = as_of.date() if as_of else None
    with instance(database) as ctx:
        try:
            report = run(ctx, as_of=day, dry_run=dry_run, batch_size=batch_size, progress=_Bar())
        except RetentionRefused as exc:
            click.echo(f"refused: {exc}", err=True)
            sys.exit(EXIT_REFUSED)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else _summary(report))
