"""`contactpoint generate` and `contactpoint bench generate`: the population's front end."""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from synthetic_data import figures
from synthetic_data.figures import MAX_CHILDREN

if TYPE_CHECKING:
    from synthetic_data.plan import Options

# Only light imports at module level: this module is loaded whenever `contactpoint` starts.


def _shard(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        index, of = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("write it as I/K, e.g. 0/4 (shards count from 0)") from None
    if of < 1 or not 0 <= index < of:
        raise click.BadParameter(f"shard {index} of {of} does not exist (0 <= I < K)")
    return index, of


def population_options(fn: Any) -> Any:
    """The options that shape a population (shared by generate and bench)."""
    for option in reversed(
        [
            click.option(
                "--children",
                type=click.IntRange(1, MAX_CHILDREN),
                default=figures.NATIONAL_CHILDREN,
                show_default=True,
                help="Children to generate, spread over the 152 LAs.",
            ),
            click.option("--seed", type=int, default=2009, show_default=True),
            click.option(
                "--as-of",
                type=click.DateTime(formats=["%Y-%m-%d"]),
                default=figures.DEFAULT_AS_OF.isoformat(),
                show_default=True,
                help="The date ages and school phases are taken on.",
            ),
            click.option(
                "--canaries",
                type=click.IntRange(0, 10_000),
                default=24,
                show_default=True,
                help="Honeytoken children no legitimate workflow touches.",
            ),
            click.option(
                "--sample-per-la",
                type=click.IntRange(0, 100_000),
                default=100,
                show_default=True,
                help="Searchable children per LA written to children_sample.jsonl.",
            ),
            click.option(
                "--personas-per-role",
                type=click.IntRange(0, 1000),
                default=8,
                show_default=True,
                help="Accounts per role with working credentials in personas.json.",
            ),
            click.option(
                "--caf-rate",
                type=click.FloatRange(0, 1),
                default=figures.Rates.caf,
                show_default=True,
                help="Share of children with a CAF assessment.",
            ),
            click.option(
                "--lead-professional-rate",
                type=click.FloatRange(0, 1),
                default=figures.Rates.lead_professional_given_caf,
                show_default=True,
                help="Share of CAF children with a lead professional.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def make_options(
    children: int,
    seed: int,
    as_of: Any,
    canaries: int,
    sample_per_la: int,
    personas_per_role: int,
    caf_rate: float,
    lead_professional_rate: float,
) -> Options:
    from synthetic_data.plan import Options

    rates = figures.Rates(caf=caf_rate, lead_professional_given_caf=lead_professional_rate)
    return Options(
        seed=seed,
        children=children,
        as_of=as_of.date() if hasattr(as_of, "date") else date.fromisoformat(str(as_of)),
        canaries=min(canaries, children - 1),
        sample_per_la=sample_per_la,
        personas_per_role=personas_per_role,
        rates=rates,
    )


@click.command()
@population_options
@click.option("--database", "database_url", help="Load into this registry database (URL).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write Parquet files (plain values) here instead.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the sample, canaries and personas go [default: --out, or ./synthetic-population].",
)
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The registry's keys file [default: CONTACTPOINT_KEYS_FILE].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=os.cpu_count() or 1,
    show_default=True,
    help="Worker processes.",
)
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    callback=_shard,
    help="Generate shard I of K (chunks I, I+K, ...); K machines make one population.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Progress on stderr: a bar on a terminal, a plain line every 5 s elsewhere.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def generate(
    database_url: str | None,
    out_dir: Path | None,
    data_dir: Path | None,
    keys_file: Path | None,
    workers: int,
    shard: tuple[int, int],
    progress: bool,
    as_json: bool,
    **population: Any,
) -> None:
    """Generate a synthetic, provably fictional population into a database or Parquet files.

    Into a registry database (PostgreSQL by COPY, SQLite by batched inserts) the rows go through
    the app's encryption and blind indexes; an interrupted load keeps whole chunks only, and a
    rerun with the same options resumes. Parquet holds plain values for loading another system.
    Exit codes: 0 done, 1 the run could not go ahead, 2 bad usage.
    """
    from reference_app.config import Settings
    from reference_app.kit.keys import KeyMaterialError, load_keyring
    from synthetic_data.runner import Argon2Settings, GenerationError, RunConfig, run

    if (database_url is None) == (out_dir is None):
        raise click.UsageError("give exactly one of --database URL or --out DIR")
    options = make_options(**population)
    keyring = None
    settings = Settings()
    if database_url is not None:
        try:
            keyring = load_keyring(
                settings.model_copy(update={"keys_file": keys_file or settings.keys_file})
            )
        except KeyMaterialError as exc:
            raise click.ClickException(str(exc)) from exc
    config = RunConfig(
        options=options,
        data_dir=data_dir or out_dir or Path("synthetic-population"),
        database_url=database_url,
        out_dir=out_dir,
        keyring=keyring,
        argon2=Argon2Settings.of(settings),
        shard=shard[0],
        shards=shard[1],
        workers=workers,
        progress=progress,
    )
    try:
        report = run(config)
    except GenerationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return
    rate = report.children / report.generate_seconds if report.generate_seconds else 0.0
    click.echo(
        f"{report.children:,} children in {report.chunks - report.skipped} chunks "
        f"({report.skipped} already there) in {report.seconds:.1f} s "
        f"({rate:,.0f} children/s; indexes and statistics {report.index_seconds:.1f} s)"
    )
    for name, count in sorted(report.rows.items()):
        click.echo(f"  {name:<15} {count:>12,}")
    if database_url is not None and not report.indexed:
        click.echo("indexes wait for the other shards: the last shard to finish builds them")
    click.echo(
        f"sample {report.sample:,}, canaries {report.canaries}, personas {report.personas} "
        f"in {config.data_dir}"
    )


@click.group()
def bench() -> None:
    """Rerunnable benchmarks, reported against a baseline measured in the same run."""


@bench.command("generate")
@click.option(
    "--children",
    type=click.IntRange(1000, MAX_CHILDREN),
    default=500_000,
    show_default=True,
    help="Children for the vectorised generator (one process).",
)
@click.option(
    "--faker-records",
    type=click.IntRange(100, 10_000_000),
    default=20_000,
    show_default=True,
    help="Child-plus-two-carers records for the plain Faker loop.",
)
@click.option(
    "--full",
    type=click.IntRange(0, MAX_CHILDREN),
    default=0,
    help="Also time a whole run of this many children to --out and/or --database.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--database", "database_url")
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Keys for --database [default: a throwaway set].",
)
@click.option("--workers", type=click.IntRange(1, 256), default=os.cpu_count() or 1)
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), help="Write JSON here.")
@click.option("--min-ratio", type=float, default=50.0, show_default=True)
def bench_generate(
    children: int,
    faker_records: int,
    full: int,
    out_dir: Path | None,
    database_url: str | None,
    keys_file: Path | None,
    workers: int,
    report: Path | None,
    min_ratio: float,
) -> None:
    """Generation rate against a plain Faker loop making the same fields, plus optional full runs.

    Exit code 1 when the ratio falls below --min-ratio.
    """
    from synthetic_data import bench as b

    result = b.run_bench(
        children=children,
        faker_records=faker_records,
        full=full,
        out_dir=out_dir,
        database_url=database_url,
        keys_file=keys_file,
        workers=workers,
    )
    click.echo(b.describe(result))
    if report is not None:
        report.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if result["ratio"] < min_ratio:
        click.echo(f"FAIL: ratio {result['ratio']:.1f} below {min_ratio}", err=True)
        sys.exit(1)
