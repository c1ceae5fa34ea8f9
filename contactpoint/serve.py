"""`contactpoint serve`: the registry's `serve`, with `--demo` to generate a throwaway instance
first (a synthetic population, personas and a load crowd, which need the harness)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from contactpoint import extra
from reference_app.cli import run_server, server_options
from reference_app.config import Environment, Settings


@click.command()
@click.option(
    "--demo",
    is_flag=True,
    help="Throwaway instance: SQLite, generated keys, seeded "
    "population and personas in --data-dir.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Where --demo keeps its database, keys and personas.",
)
@click.option(
    "--children",
    type=click.IntRange(1, 2_000_000),
    default=20_000,
    show_default=True,
    help="Children to generate with --demo.",
)
@server_options
def serve(demo: bool, data_dir: Path, children: int, host: str, port: int, workers: int) -> None:
    """Run the registry API (uvicorn with httptools and uvloop)."""
    if demo:
        extra.require("serve --demo")
        _prepare_demo(data_dir, children)
    run_server(host, port, workers)


def _prepare_demo(data_dir: Path, children: int) -> None:
    from reference_app.context import build_context
    from reference_app.kit.keys import write_keys_file
    from synthetic_data.plan import Options
    from synthetic_data.runner import Argon2Settings, RunConfig, run

    data_dir.mkdir(parents=True, exist_ok=True)
    keys = data_dir / "keys.json"
    database = data_dir / "registry.db"
    os.environ.setdefault("CONTACTPOINT_ENVIRONMENT", Environment.DEVELOPMENT.value)
    os.environ["CONTACTPOINT_DATABASE_URL"] = f"sqlite:///{database.resolve()}"
    os.environ["CONTACTPOINT_KEYS_FILE"] = str(keys.resolve())
    if not keys.exists():
        write_keys_file(keys)
    settings = Settings()
    ctx = build_context(settings)
    personas_file = data_dir / "personas.json"
    try:
        if not personas_file.exists():
            click.echo(f"Generating {children:,} synthetic children into {database} ...", err=True)
            run(
                RunConfig(
                    options=Options(children=children, personas_per_role=1),
                    data_dir=data_dir,
                    database_url=settings.database_url,
                    keyring=ctx.keyring,
                    argon2=Argon2Settings.of(settings),
                    workers=1,
                    progress=sys.stderr.isatty(),
                )
            )
    finally:
        ctx.engine.dispose()
    click.echo(
        f"Demo registry: data in {data_dir}: personas.json, children_sample.jsonl, canaries.jsonl",
        err=True,
    )
    from loadtests.cli import demo_crowd

    crowd = demo_crowd(data_dir)
    click.echo(
        f"Load personas (a crowd with caseloads): {crowd}; load this registry with "
        f"`contactpoint load --target URL --personas {crowd}`",
        err=True,
    )
