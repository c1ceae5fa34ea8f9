"""`contactpoint-registry keys status`, `keys reencrypt` and `keys retire`.

Exit codes: 0 done; 1 a problem found (status: a value under a key the document does not hold;
reencrypt: a value that would not decrypt, left as it was; retire: refused, the key is in use);
2 usage or configuration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from reference_app.kit.commands import DATABASE, instance, settings_for
from reference_app.kit.exits import ExitCode, usage

# Only light imports at module level: this module is loaded whenever `contactpoint` starts.

JSON_OUT = click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    metavar="PATH",
    default=None,
    help="Write the report as JSON to PATH ('-': standard output, the summary on stderr).",
)


def _emit(report: dict[str, Any], lines: list[str], json_path: Path | None) -> None:
    """The summary for people, and the JSON report where asked."""
    to_stdout = json_path is not None and str(json_path) == "-"
    for line in lines:
        click.echo(line, err=to_stdout)
    if json_path is None:
        return
    text = json.dumps(report, indent=2, sort_keys=True)
    if to_stdout:
        click.echo(text)
    else:
        json_path.write_text(text + "\n", encoding="utf-8")


def _status_lines(state: Any) -> list[str]:
    lines = [f"current field key: {state.current}; held: {', '.join(state.held)}"]
    for name, counts in state.columns.items():
        shown = ", ".join(f"{kid} {n:,}" for kid, n in counts.items()) or "empty"
        lines.append(f"  {name}: {shown}")
    texts = ", ".join(f"{kid} {n:,}" for kid, n in state.audit_texts.items()) or "none"
    lines.append(f"audit trail sealed text (never rewritten): {texts}")
    lines.append(f"values not under {state.current}: {state.stale():,}")
    retirable = state.retirable()
    lines.append(f"retirable now: {', '.join(retirable) if retirable else 'none'}")
    for kid, events in state.kept_for_audit().items():
        lines.append(f"kept for the audit trail: {kid} ({events:,} events)")
    for kid in state.unknown():
        lines.append(f"PROBLEM: values under {kid}, which the keys document does not hold")
    return lines


@click.command("status")
@DATABASE
@JSON_OUT
def keys_status(database: str | None, json_path: Path | None) -> None:
    """Per column, how many values each field key seals, and which old keys could be retired.

    The audit trail's sealed text is counted on its own: the trail is hash-chained, so that
    text is never rewritten, and a key it uses is kept as long as its events are.
    """
    from reference_app.rotation.service import status

    with instance(database) as ctx:
        state = status(ctx.engine, ctx.keyring)
    _emit(state.to_dict(), _status_lines(state), json_path)
    sys.exit(int(ExitCode.FOUND) if state.unknown() else 0)


@click.command("reencrypt")
@DATABASE
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows per transaction: an interrupted pass keeps its whole batches.",
)
@JSON_OUT
def keys_reencrypt(database: str | None, batch: int, json_path: Path | None) -> None:
    """Rewrite every personal field and sealed flag not under the current field key under it.

    Safe while the registry serves: each batch is its own transaction, and a row is written only
    if it still holds what was read (a row the registry changed meanwhile keeps its write). An
    interrupted pass leaves every row readable; run it again to finish. A second pass rewrites
    nothing. Progress goes to stderr.
    """
    from reference_app.rotation.service import reencrypt, status

    with instance(database) as ctx:
        report = reencrypt(ctx.engine, ctx.keyring, batch=batch)
        after = status(ctx.engine, ctx.keyring)
    doc = {**report.to_dict(), "after": after.to_dict()}
    lines = [
        f"rewrote {report.rows_rewritten:,} rows ({report.values_rewritten:,} values) under "
        f"{report.current} in {report.seconds:.1f} s, {report.batches:,} batches",
        f"values still not under {report.current}: {after.stale():,}",
    ]
    if report.rows_left:
        lines.append(
            f"{report.rows_left:,} rows changed by the registry during the pass were left as it "
            "wrote them: run the pass again to rewrite what they still hold under an old key"
        )
    for name, n in sorted(report.unreadable.items()):
        lines.append(f"PROBLEM: {n:,} value(s) in {name} would not decrypt; left as they were")
    kept = after.kept_for_audit()
    for kid, events in kept.items():
        lines.append(
            f"{kid} is still used by {events:,} audit events (immutable): keep it while they are"
        )
    retirable = after.retirable()
    lines.append(f"retirable now: {', '.join(retirable) if retirable else 'none'}")
    _emit(doc, lines, json_path)
    sys.exit(int(ExitCode.FOUND) if report.unreadable else 0)


@click.command("retire")
@click.argument("kid")
@DATABASE
@click.option(
    "--keys-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The keys document to remove the key from (rewritten atomically, mode 0600).",
)
def keys_retire(kid: str, database: str | None, keys_file: Path) -> None:
    """Remove field key KID from the keys document, only if nothing rewritable uses it and it
    is not current; refused while audit events hold text sealed under it.

    Give every instance the new document afterwards (the key stays in memory until restarted).
    Backups taken before the re-encryption still need KID: keep the previous document, as the
    vault does, as long as those backups.
    """
    from reference_app.kit.db import make_engine
    from reference_app.kit.exits import existing_sqlite
    from reference_app.kit.keys import KeyMaterialError, parse_document, replace_keys_file
    from reference_app.rotation.service import RetireRefused, check_retirable, status, without_key

    try:
        document = json.loads(keys_file.read_text(encoding="utf-8"))
        keyring = parse_document(document)
    except (ValueError, KeyMaterialError) as exc:
        raise usage(f"cannot read keys file {keys_file}: {exc}") from exc
    if kid not in keyring.field_keys:
        raise usage(f"{keys_file} holds no field key {kid!r}")
    url = settings_for(database).database_url
    existing_sqlite(url)
    engine = make_engine(url)
    try:
        state = status(engine, keyring)
    finally:
        engine.dispose()
    try:
        check_retirable(state, kid)
    except RetireRefused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(int(ExitCode.FOUND))
    replace_keys_file(keys_file, without_key(document, kid))
    click.echo(
        f"retired field key {kid} from {keys_file}; restart every instance on this document. "
        f"Backups taken before the re-encryption still need {kid}: keep the previous document "
        "as long as them"
    )
