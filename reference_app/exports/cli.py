"""`contactpoint export`: open an export as its recipient, and trace a leaked copy to its export."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from reference_app.kit.commands import DATABASE, instance

EXIT_FAILED = 1


@click.group("export")
def export() -> None:
    """Bulk exports: open one as its recipient, trace a leaked copy to its source."""


@export.command("trace")
@DATABASE
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def trace(database: str | None, as_json: bool, file: Path) -> None:
    """Name the export a leaked FILE came from (JSON lines, or any text with child ids).

    Looks for the watermark children each export carries; exit 1 when none is found.
    """
    from reference_app.exports.service import child_ids_in
    from reference_app.exports.service import trace as find

    text = file.read_text(encoding="utf-8", errors="replace")
    with instance(database) as ctx, ctx.sessions() as session:
        found = find(session, ctx.crypto, text)
    if as_json:
        click.echo(json.dumps({"ids_seen": len(child_ids_in(text)), "exports": found}, indent=2))
    else:
        for hit in found:
            click.echo(
                f"export {hit['export_id']} ({hit['local_authority']}, {hit['status']}): "
                f"requested by {_who(hit['requested_by'])} at {hit['requested_at']}; "
                f"approved by {_who(hit['approved_by'])} at {hit['approved_at']}; "
                f"recipient {hit['recipient_name']!r} (key {hit['recipient_fingerprint']}); "
                f"downloaded {hit['downloaded_at'] or 'never'} "
                f"(sha256 {hit['download_sha256']}); watermark rows found "
                f"{len(hit['watermarks_found'])} of {hit['watermarks_total']}: "
                f"{', '.join(hit['watermarks_found'])}"
            )
        if not found:
            click.echo("no watermark row found: the file names no export")
    sys.exit(0 if found else EXIT_FAILED)


def _who(person: dict[str, Any] | None) -> str:
    if not person:
        return "nobody"
    return f"{person.get('username')} ({person.get('display_name')}, id {person['id']})"


@export.command("open")
@click.option(
    "--identity",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="The recipient's age identity file (AGE-SECRET-KEY-1...); for an export in the old "
    "envelope format (this release only), the PEM private key.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write the plaintext JSON lines (refuses to overwrite).",
)
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def open_export(identity: Path, out: Path, file: Path) -> None:
    """Decrypt an export FILE with the recipient's key; exit 1 if tampered or for another key.

    The same as `age -d -i IDENTITY -o OUT FILE`, with the plaintext written only once the whole
    file has been authenticated.
    """
    from reference_app.exports.service import LABEL_PREFIX
    from reference_app.kit.agefile import (
        AgeFileError,
        Format,
        KeyFileError,
        load_identities,
        open_file,
        sniff,
    )
    from reference_app.kit.legacy_envelope import DEPRECATION

    if out.exists():
        raise click.UsageError(f"{out} exists; an export is never written over a file")
    try:
        keys = load_identities(identity.read_bytes())
    except KeyFileError as exc:
        raise click.UsageError(f"{identity}: {exc}") from exc
    partial = out.with_name(out.name + ".partial")
    rows = 0
    try:
        with file.open("rb") as src:
            kind = sniff(src)
            if kind is Format.LEGACY:
                click.echo(f"deprecated: {DEPRECATION}", err=True)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as dst:
                for chunk in open_file(src, keys, kind=kind, legacy_label=LABEL_PREFIX):
                    dst.write(chunk)
                    rows += chunk.count(b"\n")
    except AgeFileError as exc:
        partial.unlink(missing_ok=True)
        click.echo(f"cannot open {file}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    click.echo(f"{rows} rows written to {out}")
