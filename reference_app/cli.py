"""The registry's command line, `contactpoint-registry`: serve, db, keys (and their rotation),
users, audit, detect, export, retention, backup and restore.

It needs nothing of the generator or the harnesses, so a registry host installs the project
without extras and carries only this. The `contactpoint` command (`contactpoint.cli`) composes
these commands with the harness's.

Exit codes (every command; see `reference_app.kit.exits`): 0 pass; 1 a check ran and found a
problem (e.g. tampering); 2 usage or configuration; 3 could not judge; 4 target or dependency
unreachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reference_app.config import Settings
from reference_app.kit.commands import DATABASE, instance, settings_for
from reference_app.kit.exits import ExitCode, explain

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reference_app.kit.keys import Keyring

EXIT_FAILED = int(ExitCode.FOUND)
EXIT_USAGE = int(ExitCode.USAGE)


class Commands(click.Group):
    """The command group: a known configuration or reachability error is one line, not a trace."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except Exception as exc:
            failure = None if ctx.params.get("debug") else explain(exc)
            if failure is None:
                raise
            raise failure from exc


EXIT_CODES = """\b
Exit codes, every command:
  0  pass
  1  a check ran and found a problem
  2  usage or configuration error (nothing was run)
  3  could not judge (the run was invalid)
  4  the target or a dependency is unreachable"""


def command_line(summary: str) -> Callable[[Callable[..., Any]], Commands]:
    """The top-level group of a ContactPoint command line: ``summary`` and the exit codes as its
    help, --version, and --debug to show the traceback a known error would hide."""

    def make(callback: Callable[..., Any]) -> Commands:
        callback = click.option(
            "--debug", is_flag=True, help="Show the traceback of a configuration error."
        )(callback)
        callback = click.version_option(package_name="contactpoint-harness")(callback)
        return click.group(
            cls=Commands,
            help=f"{summary}\n\n{EXIT_CODES}",
            context_settings={"help_option_names": ["-h", "--help"]},
        )(callback)

    return make


@command_line(
    "ContactPoint registry: serve the API and operate its database, keys, users, audit trail,\n"
    "exports and backups."
)
def main(debug: bool) -> None:
    telemetry(click.get_current_context().invoked_subcommand, SERVICES)


# Telemetry (OTEL_* variables; off by default): the service each command reports as.
SERVICES = {"serve": "contactpoint-registry"}


def telemetry(command: str | None, services: dict[str, str]) -> None:
    """Configure telemetry for ``command``, as the service ``services`` names (else the CLI)."""
    from observability.setup import TelemetryConfigError, configure

    try:
        configure(services.get(command or "", "contactpoint-cli"))
    except TelemetryConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every `serve`: where to listen and how many worker processes."""
    command = click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)(
        command
    )
    command = click.option(
        "--port", type=click.IntRange(1, 65535), default=8000, show_default=True
    )(command)
    return click.option("--host", default="127.0.0.1", show_default=True)(command)


@main.command()
@server_options
def serve(host: str, port: int, workers: int) -> None:
    """Run the registry API (uvicorn with httptools and uvloop)."""
    run_server(host, port, workers)


def run_server(host: str, port: int, workers: int) -> None:
    """Serve the registry configured by the environment until stopped."""

    with instance(None):
        pass  # fail fast, before starting workers, on missing keys or a bad URL
    settings = Settings()
    siblings = None
    if workers > 1:
        # Each worker offers its request and SQL histograms to the others on a socket here,
        # so a scrape answered by any of them counts every worker's traffic (observability).
        from observability.siblings import SIBLINGS_ENV

        siblings = tempfile.mkdtemp(prefix="contactpoint-metrics-")
        os.environ[SIBLINGS_ENV] = siblings
    try:
        _run_uvicorn(host, port, workers, settings)
    finally:
        if siblings is not None:
            shutil.rmtree(siblings, ignore_errors=True)
    _exit_past_stuck_threads()


def _run_uvicorn(host: str, port: int, workers: int, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        "reference_app.asgi:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="info",
        # The registry decides which forwarded headers to believe (settings.trusted_proxies);
        # uvicorn's own handling believes any local peer. And no `server: uvicorn` banner.
        proxy_headers=False,
        server_header=False,
        # Bounded connections (docs/faults.md): an idle keep-alive connection is closed after
        # keep_alive_seconds; at SIGTERM, requests still running after shutdown_grace_seconds
        # are cancelled; a request's headers may not exceed h11's 16 KiB (httptools: 80 KiB).
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        h11_max_incomplete_event_size=16 * 1024,
    )


def _exit_past_stuck_threads() -> None:
    """End the process now that the server has stopped, without joining its worker threads:
    one still blocked on a stalled store would hold the interpreter's exit forever (idle ones
    would only linger for their idle timeout)."""
    import logging
    import threading

    stuck = [t for t in threading.enumerate() if t.is_alive() and not t.daemon]
    stuck = [t for t in stuck if t is not threading.main_thread()]
    if stuck:
        logging.getLogger("contactpoint").warning(
            "exiting without joining %d worker thread(s)", len(stuck)
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@main.group()
def db() -> None:
    """Database schema and privileges."""


@db.command("upgrade")
@DATABASE
@click.option(
    "--app-role",
    default=None,
    help="PostgreSQL role the app connects as: created if "
    "missing and granted least privilege (no UPDATE/DELETE on the audit trail).",
)
def db_upgrade(database: str | None, app_role: str | None) -> None:
    """Migrate the schema to the latest revision (as the database owner)."""
    from reference_app.kit.db import make_engine
    from reference_app.kit.keys import KeyMaterialError, load_keyring
    from reference_app.kit.migrate import current_revision, grant_app_role, upgrade
    from reference_app.kit.sealing import Sealer, bind

    settings = settings_for(database)
    engine = make_engine(settings.database_url)
    # An upgrade that seals existing rows needs the instance's keys; an empty or current
    # database does not, and says so if it finds rows it cannot seal.
    keyring: Keyring | None = None
    with contextlib.suppress(KeyMaterialError):
        keyring = load_keyring(settings)
        bind(engine, Sealer.of(keyring))
    try:
        before = current_revision(engine)
        upgrade(engine)
        if before is not None and before < HOUSEHOLDS_REVISION:
            # Household shielding came in with the flag unset: compute it for existing rows.
            if keyring is None:
                click.echo(
                    "households not computed (no keys file): run `contactpoint db "
                    "refresh-households` with CONTACTPOINT_KEYS_FILE set",
                    err=True,
                )
            else:
                seeds = _refresh_households(engine, keyring)
                click.echo(f"households of {seeds} shielded children recomputed")
        role = app_role or settings.database_app_role
        if role:
            grant_app_role(engine, role)
            click.echo(f"granted least privilege to role {role}")
        click.echo(f"schema at revision {current_revision(engine)}")
    finally:
        engine.dispose()


# The revision that added household shielding with the flag unset on existing rows.
HOUSEHOLDS_REVISION = "0012"


def _refresh_households(engine: Engine, keyring: Keyring) -> int:
    from reference_app.children.service import refresh_all_households
    from reference_app.kit.crypto import Crypto
    from reference_app.kit.db import make_session_factory

    with make_session_factory(engine)() as session, session.begin():
        return refresh_all_households(session, Crypto(keyring))


@db.command("refresh-households")
@DATABASE
def db_refresh_households(database: str | None) -> None:
    """Recompute which children share an address or a carer with a shielded child (after a
    bulk load by other means, or an upgrade run without keys)."""
    with instance(database) as ctx:
        seeds = _refresh_households(ctx.engine, ctx.keyring)
    click.echo(f"households of {seeds} shielded children recomputed")


@db.command("seed-local-authorities")
@DATABASE
def db_seed_las(database: str | None) -> None:
    """Load the 152 English local authorities."""
    from reference_app.localauthorities.service import seed_local_authorities

    with instance(database) as ctx, ctx.sessions() as session, session.begin():
        count = len(seed_local_authorities(session))
    click.echo(f"{count} local authorities present")


@main.group()
def keys() -> None:
    """Key material."""


@keys.command("generate")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="File to create (refuses to overwrite).",
)
def keys_generate(out: Path) -> None:
    """Write a fresh keys file (mode 0600) and print the audit public keys."""
    from reference_app.kit.keys import parse_document, public_key_document, write_keys_file

    if out.exists():
        raise click.ClickException(f"{out} exists; keys are never overwritten")
    write_keys_file(out)
    keyring = parse_document(json.loads(out.read_text()))
    click.echo(json.dumps({"audit_public_keys": public_key_document(keyring)}, indent=2))


@keys.command("recipient-keypair")
@click.option(
    "--out-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory for recipient.key.txt (age identity, mode 0600) and recipient.pub.txt.",
)
def keys_recipient_keypair(out_dir: Path) -> None:
    """An age key pair for a recipient of exports or backups: the public key (age1...) goes to
    the registry, the identity stays with the recipient (`age -d -i recipient.key.txt` opens)."""
    from reference_app.kit.agefile import fingerprint, generate_identity, load_recipient

    secret, public = generate_identity()
    private, public_file = out_dir / "recipient.key.txt", out_dir / "recipient.pub.txt"
    if private.exists() or public_file.exists():
        raise click.ClickException(f"a key pair exists in {out_dir}; keys are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret)
    public_file.write_text(f"{public}\n", encoding="ascii")
    click.echo(
        json.dumps(
            {
                "private_key": str(private),
                "public_key": str(public_file),
                "recipient": public,
                "fingerprint": fingerprint(load_recipient(public)),
            }
        )
    )


@main.group()
def users() -> None:
    """Practitioner accounts."""


@users.command("create")
@DATABASE
@click.option("--username", required=True)
@click.option("--display-name", required=True)
@click.option(
    "--role",
    required=True,
    type=click.Choice(
        [
            "education_practitioner",
            "health_practitioner",
            "la_data_manager",
            "national_auditor",
            "police_practitioner",
            "social_care_practitioner",
            "system_administrator",
            "voluntary_practitioner",
            "youth_offending_practitioner",
        ]
    ),
)
@click.option("--organisation-id", type=int, required=True)
def users_create(
    database: str | None, username: str, display_name: str, role: str, organisation_id: int
) -> None:
    """Create an account; prints its one-time initial password and TOTP secret as JSON."""
    from reference_app.access.permissions import Role
    from reference_app.kit.errors import AppError
    from reference_app.practitioners.service import create_account
    from reference_app.services.models import Organisation

    with instance(database) as ctx, ctx.sessions() as session, session.begin():
        org = session.get(Organisation, organisation_id)
        if org is None:
            raise click.ClickException(f"no organisation {organisation_id}")
        try:
            account = create_account(
                ctx,
                session,
                username=username,
                display_name=display_name,
                role=Role(role),
                organisation=org,
            )
        except AppError as exc:
            raise click.ClickException(exc.error_message) from exc
        click.echo(
            json.dumps(
                {
                    "id": account.practitioner.id,
                    "username": username,
                    "role": role,
                    "password": account.password,
                    "totp_secret": account.totp_secret,
                }
            )
        )


@main.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("seal")
@DATABASE
def audit_seal(database: str | None) -> None:
    """Seal pending events into the log and sign a checkpoint."""
    from reference_app.audit.service import seal_all

    with instance(database) as ctx:
        click.echo(f"sealed {seal_all(ctx)} events")


@audit.command("verify")
@DATABASE
@click.option(
    "--witness",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="JSONL of checkpoints kept outside the host (from `audit checkpoint`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(database: str | None, witness: Path | None, as_json: bool) -> None:
    """Check signatures, roots and every entry; exit 1 naming each tampered place."""
    from reference_app.audit.verify import verify_instance

    seen = []
    if witness:
        seen = [json.loads(line) for line in witness.read_text().splitlines() if line.strip()]
    with instance(database) as ctx:
        report = verify_instance(ctx, seen)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(
            f"checkpoints: {report.checkpoints}  signed entries: {report.tree_size}  "
            f"log entries: {report.entries}  pending: {report.pending}"
        )
        for finding in report.findings:
            click.echo(f"TAMPERED [{finding.kind.value}] {finding.message}")
        click.echo("audit log intact" if report.ok else f"{len(report.findings)} finding(s)")
    sys.exit(0 if report.ok else EXIT_FAILED)


@audit.command("checkpoint")
@DATABASE
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Witness file (JSONL) to append the latest signed checkpoint to.",
)
def audit_checkpoint(database: str | None, out: Path) -> None:
    """Append the latest signed checkpoint to a witness file kept off the host."""
    from reference_app.audit.repository import latest_checkpoint
    from reference_app.audit.service import checkpoint_document

    with instance(database) as ctx, ctx.sessions() as session:
        checkpoint = latest_checkpoint(session)
        if checkpoint is None:
            raise click.ClickException("nothing sealed yet; run `contactpoint audit seal`")
        doc = checkpoint_document(checkpoint)
    with out.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(doc) + "\n")
    click.echo(f"witnessed tree size {doc['tree_size']}")


@main.command("detect")
@DATABASE
@click.option("--seal/--no-seal", default=True, help="Seal pending events first (default on).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def detect(database: str | None, seal: bool, as_json: bool) -> None:
    """Score record views in the sealed audit log for insider browsing; alert and suspend.

    The app runs the same detector in the background; this command catches up by hand (after
    an outage, or where the background detector is switched off).
    """
    from reference_app.audit.service import seal_all
    from reference_app.detection.service import scan

    with instance(database) as ctx:
        if seal:
            seal_all(ctx)
        report = scan(ctx)
    rules = dict(sorted(report.rules.items()))
    doc = {
        "events": report.events,
        "views": report.views,
        "alerts": report.alerts,
        "suspensions": report.suspensions,
        "rules": rules,
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(
            f"scored {report.views} views: {report.alerts} alerts, {report.suspensions} suspensions"
        )
        for rule, count in rules.items():
            click.echo(f"  {rule}: {count}")


def _register_parts() -> None:
    # The contexts' own commands hang off the one CLI; imported here so `--help` stays fast
    # (heavy imports happen inside the commands).
    from reference_app.backup.cli import backup, backup_keypair, restore
    from reference_app.exports.cli import export
    from reference_app.retention.cli import retention
    from reference_app.rotation.cli import keys_reencrypt, keys_retire, keys_status

    main.add_command(export)
    main.add_command(retention)
    main.add_command(backup)
    main.add_command(restore)
    keys.add_command(backup_keypair)
    keys.add_command(keys_status)
    keys.add_command(keys_reencrypt)
    keys.add_command(keys_retire)


_register_parts()

if __name__ == "__main__":
    main()
