"""`contactpoint backup`, `contactpoint restore` and its drill, `contactpoint keys backup-keypair`.

Exit codes: 0 done (the drill: every table matches); 1 refused or failed, with the database
left as it was (the drill: a table differs); 2 bad usage (a missing option, an unusable key).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from reference_app.kit.commands import Decorator, database_option, instance

if TYPE_CHECKING:
    from reference_app.backup.restore import DrillReport, RestoreResult
    from reference_app.backup.snapshot import BackupResult
    from reference_app.context import AppContext

# Only light imports at module level: this module is loaded whenever `contactpoint` starts.

IDENTITY_FILE = "backup-identity.txt"
RECIPIENT_FILE = "backup-recipient.txt"


PROGRESS = click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Rows and bytes on stderr as it goes: a bar on a terminal, a line every 5 s elsewhere.",
)


def _key_file(name: str, help_text: str) -> Decorator:
    return click.option(
        name,
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        required=True,
        help=help_text,
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@click.command("backup-keypair")
@click.option(
    "--out-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help=f"Folder to write {IDENTITY_FILE} (mode 0600) and {RECIPIENT_FILE} into.",
)
def backup_keypair(out_dir: Path) -> None:
    """Make the age key pair backups are sealed to.

    The machine that makes backups needs only the public key (backup-recipient.txt, age1...)
    and cannot read a backup back; keep the identity (backup-identity.txt, AGE-SECRET-KEY-1...)
    offline, with whoever restores. `age -d -i backup-identity.txt FILE` opens a backup too.
    """
    from reference_app.kit.agefile import fingerprint, generate_identity, load_recipient

    identity, recipient = out_dir / IDENTITY_FILE, out_dir / RECIPIENT_FILE
    for path in (identity, recipient):
        if path.exists():
            raise click.ClickException(f"{path} exists; keys are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    secret, public = generate_identity()
    _write_new(identity, secret.encode("ascii"), 0o600)
    _write_new(recipient, f"{public}\n".encode("ascii"), 0o644)
    click.echo(f"identity (private, keep offline): {identity}")
    click.echo(f"recipient (public, for `contactpoint backup`): {recipient}")
    click.echo(f"public key: {public}")
    click.echo(f"fingerprint: {fingerprint(load_recipient(public))}")


def _refused(message: str, as_json: bool, extra: dict[str, Any] | None = None) -> NoReturn:
    from reference_app.cli import EXIT_FAILED

    if as_json:
        click.echo(json.dumps({"ok": False, "error": message, **(extra or {})}, indent=2))
    else:
        click.echo(f"refused: {message}", err=True)
    sys.exit(EXIT_FAILED)


def _database_error(exc: Exception) -> str:
    """A database error's primary message: never its detail, which may quote a row."""
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return f"database error: {primary or orig or type(exc).__name__}"


def _audit(ctx: AppContext, tag: Any, details: dict[str, Any]) -> int:
    from reference_app.audit.service import RequestInfo, record

    with ctx.sessions() as db, db.begin():
        return record(
            db, ctx, tag, info=RequestInfo(request_id=None, source="cli"), details=details
        )


@click.command()
@database_option("Database to back up (default: CONTACTPOINT_DATABASE_URL).")
@_key_file(
    "--recipient",
    "File of age public keys (age1..., one a line) to seal the backup to (`keys backup-keypair`).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Backup file to create (never overwritten).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@PROGRESS
def backup(database: str | None, recipient: Path, out: Path, as_json: bool, progress: bool) -> None:
    """Write an encrypted, integrity-checked backup of the whole registry.

    Every table (and the schema revision) from one consistent snapshot, in a form that restores
    into SQLite or PostgreSQL, sealed in the age format to the recipient keys: this machine
    cannot read it back; `age -d -i IDENTITY FILE` or `contactpoint restore` can.
    Records a `backup:created` audit event (counts and the file's SHA-256); if it cannot, the
    file is removed, so no backup goes unrecorded. Run it as the
    schema owner (on PostgreSQL the application role, CONTACTPOINT_DATABASE_APP_ROLE, is not
    meant to read everything); it needs CONTACTPOINT_KEYS_FILE to write the audit event.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from reference_app.audit.tags import EventTag
    from reference_app.backup.format import BackupError
    from reference_app.backup.snapshot import write_backup
    from reference_app.kit.agefile import KeyFileError, load_recipients

    try:
        key = load_recipients(recipient.read_text(encoding="utf-8", errors="replace"))
    except KeyFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--recipient") from exc
    with instance(database) as ctx:
        try:
            result = write_backup(
                ctx.settings.database_url,
                key,
                out,
                now=ctx.clock.now(),
                progress=progress,
            )
        except (BackupError, SQLAlchemyError, OSError) as exc:
            _refused(_failure_message(exc)[0], as_json)
        try:
            event_id = _audit(ctx, EventTag.BACKUP_CREATED, _backup_details(result))
        except SQLAlchemyError as exc:
            # No backup leaves unrecorded: the trail is how a lost copy is traced.
            result.path.unlink(missing_ok=True)
            _refused(
                f"the backup:created event could not be recorded ({_database_error(exc)}); "
                "the backup file was removed",
                as_json,
            )
    _print_backup(result, event_id, as_json)


def _backup_details(result: BackupResult) -> dict[str, Any]:
    return {
        "file_sha256": result.sha256,
        "bytes": result.size,
        "recipient": result.recipient,
        "alembic_revision": result.manifest.alembic_revision,
        "created_at": result.manifest.created_at,
        "rows": result.manifest.total_rows,
        "tables": {name: s.rows for name, s in result.manifest.tables.items()},
    }


def _print_backup(result: BackupResult, event_id: int, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps({"ok": True, **result.to_dict(), "audit_event_id": event_id}, indent=2)
        )
        return
    manifest = result.manifest
    click.echo(
        f"backup written: {result.path} ({result.size:,} bytes, sha256 {result.sha256})\n"
        f"  {manifest.total_rows:,} rows in {len(manifest.tables)} tables, schema "
        f"{manifest.alembic_revision}, from {manifest.dialect} at {manifest.created_at}\n"
        f"  sealed to recipient {result.recipient} in {result.seconds:.1f} s; "
        f"audit event {event_id}"
    )


@click.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@database_option("Empty database to restore into (default: CONTACTPOINT_DATABASE_URL).")
@_key_file(
    "--identity",
    "age identity file (AGE-SECRET-KEY-1...) the backup was sealed to; for a backup in the old "
    "envelope format (this release only), its PEM private key.",
)
@click.option(
    "--drill",
    is_flag=True,
    help="Restore into a scratch database and compare it with the manifest and --source.",
)
@click.option("--source", metavar="URL", help="With --drill: the live database backed up.")
@click.option(
    "--scratch",
    metavar="URL",
    help="With --drill: an empty database to restore into (default: a temporary SQLite file).",
)
@click.option(
    "--live",
    is_flag=True,
    help="With --drill: the source is in use; only its history (the audit trail) must still "
    "hold the backup's rows unchanged, other tables may have moved on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@PROGRESS
def restore(
    file: Path,
    database: str | None,
    identity: Path,
    drill: bool,
    source: str | None,
    scratch: str | None,
    live: bool,
    as_json: bool,
    progress: bool,
) -> None:
    """Restore a backup into an empty database, all or nothing; or run the restore drill.

    The target must hold no registry rows. The schema is brought to the backup's revision and
    every row loaded in one transaction, committed only when each table's row count and
    checksum, recomputed from the database, match the backup's manifest. A wrong key, a
    tampered or cut-short file, or any mismatch leaves the target as it was (a new SQLite file
    is removed). A restore records `backup:restored` and seals the trail, so
    `contactpoint audit verify` passes on the restored database.

    With --drill, nothing is written to --source: the backup is restored into --scratch, and
    each table is compared with the manifest and with a snapshot of the source taken now. A
    table passes when its scratch copy matches the manifest and the source still holds exactly
    the backup's rows; a table keyed by one integer may also hold newer rows above the backup's
    highest key (reported as "grew": new audit events, for instance). Bookkeeping tables the
    running registry rewrites every second (detector cursors, counters, sessions) are reported
    "changed" and pass. Any other change to the source since the backup fails the drill, unless
    --live: then only the audit trail must be unchanged, and the drill proves the backup
    restores exactly and belongs to this registry's history.

    Run it as the schema owner: on PostgreSQL the application role may not create tables or
    move sequences (grant it afterwards with `contactpoint db upgrade --app-role ROLE`).
    """
    from reference_app.kit.agefile import KeyFileError, load_identities

    if drill and (source is None or database is not None):
        raise click.UsageError("--drill takes --source URL (and optionally --scratch URL)")
    if not drill and (source is not None or scratch is not None or live):
        raise click.UsageError("--source, --scratch and --live go with --drill")
    try:
        key = load_identities(identity.read_bytes())
    except KeyFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--identity") from exc
    _warn_if_legacy(file)
    if drill:
        assert source is not None
        _run_drill(source, key, file, scratch, as_json, live=live, progress=progress)
    else:
        _run_restore(database, key, file, as_json, progress=progress)


def _warn_if_legacy(file: Path) -> None:
    """Say so on stderr when the backup is in the envelope format read for this release only."""
    from reference_app.kit.agefile import AgeFileError, Format, sniff
    from reference_app.kit.legacy_envelope import DEPRECATION

    try:
        with file.open("rb") as src:
            legacy = sniff(src) is Format.LEGACY
    except (AgeFileError, OSError):
        return  # the restore itself says what is wrong with the file
    if legacy:
        click.echo(f"deprecated: {DEPRECATION}", err=True)


def _failure_message(exc: Exception) -> tuple[str, dict[str, Any]]:
    """What to say about a failed backup or restore, and the table checks to show."""
    from sqlalchemy.exc import SQLAlchemyError

    from reference_app.backup.format import BackupFormatError
    from reference_app.backup.restore import RestoreError
    from reference_app.kit.agefile import AgeFileError

    if isinstance(exc, RestoreError):
        return str(exc), {"tables": [c.to_dict() for c in exc.checks]}
    if isinstance(exc, AgeFileError):
        return f"the backup cannot be opened: {exc}", {}
    if isinstance(exc, BackupFormatError):
        return f"the backup is not well formed: {exc}", {}
    if isinstance(exc, SQLAlchemyError):
        return _database_error(exc), {}
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", {}
    return str(exc), {}


def _run_restore(
    database: str | None, key: Any, file: Path, as_json: bool, *, progress: bool
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from reference_app.audit.service import seal_all
    from reference_app.audit.tags import EventTag
    from reference_app.backup.format import BackupError
    from reference_app.backup.restore import restore_backup
    from reference_app.kit.agefile import AgeFileError

    with instance(database, create=True) as ctx:
        try:
            result = restore_backup(ctx.settings.database_url, key, file, progress=progress)
        except (BackupError, AgeFileError, SQLAlchemyError, OSError) as exc:
            message, extra = _failure_message(exc)
            _refused(f"{message}; the target database was left as it was", as_json, extra)
        event_id = _audit(ctx, EventTag.BACKUP_RESTORED, _restore_details(result))
        sealed = seal_all(ctx)
    _print_restore(result, event_id, sealed, as_json)


def _restore_details(result: RestoreResult) -> dict[str, Any]:
    manifest = result.manifest
    return {
        "file_sha256": result.file.sha256,
        "bytes": result.file.size,
        "backup_created_at": manifest.created_at,
        "source_dialect": manifest.dialect,
        "alembic_revision": manifest.alembic_revision,
        "rows": manifest.total_rows,
        "tables": {name: s.rows for name, s in manifest.tables.items()},
    }


def _print_restore(result: RestoreResult, event_id: int, sealed: int, as_json: bool) -> None:
    if as_json:
        doc = {**result.to_dict(), "audit_event_id": event_id, "sealed_events": sealed}
        click.echo(json.dumps(doc, indent=2))
        return
    manifest = result.manifest
    click.echo(
        f"restored {manifest.total_rows:,} rows in {len(result.checks)} tables "
        f"(backup of {manifest.dialect} at {manifest.created_at}, schema "
        f"{manifest.alembic_revision}) in {result.seconds:.1f} s\n"
        "  every table's row count and checksum match the manifest\n"
        f"  audit event {event_id} (backup:restored); {sealed} pending events sealed"
    )
    if result.dialect == "postgresql":
        role = os.environ.get("CONTACTPOINT_DATABASE_APP_ROLE") or "ROLE"
        click.echo(
            "  grant the application role its privileges: "
            f"contactpoint db upgrade --database URL --app-role {role}"
        )


def _run_drill(
    source: str,
    key: Any,
    file: Path,
    scratch: str | None,
    as_json: bool,
    *,
    live: bool,
    progress: bool,
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from reference_app.backup.format import BackupError
    from reference_app.backup.restore import drill
    from reference_app.cli import EXIT_FAILED
    from reference_app.kit.agefile import AgeFileError

    try:
        report = drill(source, key, file, scratch=scratch, progress=progress, live=live)
    except (BackupError, AgeFileError, SQLAlchemyError, OSError) as exc:
        message, extra = _failure_message(exc)
        _refused(f"drill failed: {message}", as_json, extra)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_drill(report)
    sys.exit(0 if report.ok else EXIT_FAILED)


def _print_drill(report: DrillReport) -> None:
    from reference_app.backup.restore import BOOKKEEPING

    click.echo(
        f"restore drill: backup of {report.manifest.dialect} at {report.manifest.created_at}, "
        f"schema {report.manifest.alembic_revision}, restored into {report.scratch}"
    )
    width = max(len(r.table) for r in report.rows)
    click.echo(f"{'table':<{width}}  {'backup rows':>11}  {'scratch':<8}  source")
    for row in report.rows:
        source: str = row.source
        if row.source == "grew":
            source = f"grew (+{row.source_newer_rows} newer rows)"
        elif row.source == "missing":
            source = "MISSING"
        elif row.source == "changed":
            source = "changed (bookkeeping)" if row.table in BOOKKEEPING else "changed (live)"
        elif row.source == "differs":
            source = f"DIFFERS (source: {row.source_rows:,} rows)"
        click.echo(
            f"{row.table:<{width}}  {row.backup_rows:>11,}  "
            f"{'match' if row.scratch_ok else 'DIFFERS':<8}  {source}"
        )
    if report.restore_error:
        click.echo(f"restore: {report.restore_error}")
    click.echo("drill passed" if report.ok else f"drill FAILED: {', '.join(report.failed)} differ")
