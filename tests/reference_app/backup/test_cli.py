"""The backup commands: key pair, backup, restore, audit verify afterwards, and exit codes."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from reference_app.audit.models import AuditEvent
from reference_app.cli import main
from reference_app.kit.agefile import load_identities, load_recipients
from reference_app.kit.db import make_engine
from tests.fixtures.backup import BackupSource, Targets, copy_of


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def events(url: str, tag: str) -> list[dict[str, object]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEvent).where(AuditEvent.tag == tag)).all()
    finally:
        engine.dispose()
    return [{**json.loads(r.details), "source": r.source, "actor_id": r.actor_id} for r in rows]


def test_the_key_pair_keeps_its_private_half_to_its_owner(tmp_path: Path) -> None:
    made = run(["keys", "backup-keypair", "--out-dir", tmp_path / "keys"])
    assert made.exit_code == 0, made.output
    identity = tmp_path / "keys" / "backup-identity.txt"
    recipient = tmp_path / "keys" / "backup-recipient.txt"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    [key] = load_identities(identity.read_bytes()).age
    [public] = load_recipients(recipient.read_text())
    assert str(key.to_public()) == str(public)
    assert f"public key: {public}" in made.output
    again = run(["keys", "backup-keypair", "--out-dir", tmp_path / "keys"])
    assert again.exit_code == 1
    assert "never overwritten" in again.output


def test_backup_restore_then_audit_verify(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    source = copy_of(backup_source, targets)
    out = tmp_path / "registry.cpb"
    made = run(
        ["backup", "--recipient", backup_source.recipient_file, "--out", out, "--json"],
        backup_source.env(source),
    )
    assert made.exit_code == 0, made.output
    summary = json.loads(made.stdout)
    assert summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert summary["rows"] == backup_source.result.manifest.total_rows
    [created] = events(source, "backup:created")
    assert created["file_sha256"] == summary["sha256"]
    assert created["tables"]["children"] == 303  # type: ignore[index]  # 300 and an export's 3 watermarks
    assert created["source"] == "cli"
    assert created["actor_id"] is None
    known = backup_source.generated.sample[0]
    assert known["family_name"] not in json.dumps(created)

    target = targets.bare(backup_source.backend)
    restored = run(
        ["restore", "--identity", backup_source.identity_file, out, "--json"],
        backup_source.env(target),
    )
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["ok"] is True
    assert all(t["ok"] for t in report["tables"])
    assert report["sealed_events"] >= 1  # the backup's pending event and backup:restored
    [event] = events(target, "backup:restored")
    assert event["file_sha256"] == summary["sha256"]
    assert event["source_dialect"] == backup_source.backend

    verified = run(["audit", "verify"], backup_source.env(target))
    assert verified.exit_code == 0, verified.output
    assert "audit log intact" in verified.output

    again = run(
        ["restore", "--identity", backup_source.identity_file, out], backup_source.env(target)
    )
    assert again.exit_code == 1
    assert "not empty" in again.output
    assert "left as it was" in again.output


def test_the_human_summaries(backup_source: BackupSource, targets: Targets, tmp_path: Path) -> None:
    out = tmp_path / "b.cpb"
    made = run(
        ["backup", "--recipient", backup_source.recipient_file, "--out", out],
        backup_source.env(copy_of(backup_source, targets)),
    )
    assert made.exit_code == 0, made.output
    assert f"backup written: {out}" in made.output
    target = targets.bare(backup_source.backend)
    restored = run(
        ["restore", "--identity", backup_source.identity_file, out], backup_source.env(target)
    )
    assert restored.exit_code == 0, restored.output
    assert "every table's row count and checksum match the manifest" in restored.output


def test_refusals_exit_1_and_bad_usage_exits_2(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    env = backup_source.env()
    identity, recipient = backup_source.identity_file, backup_source.recipient_file
    existing = tmp_path / "existing.cpb"
    existing.write_bytes(b"keep")
    assert run(["backup", "--recipient", recipient, "--out", existing], env).exit_code == 1
    assert existing.read_bytes() == b"keep"
    # A private key is not a recipient; options missing or misplaced are usage errors.
    assert run(["backup", "--recipient", identity, "--out", tmp_path / "x"], env).exit_code == 2
    assert run(["backup", "--recipient", recipient], env).exit_code == 2
    assert run(["restore", "--identity", recipient, backup_source.backup], env).exit_code == 2
    misplaced = ["restore", "--identity", identity, "--source", backup_source.url]
    assert run([*misplaced, backup_source.backup], env).exit_code == 2
    assert run(["restore", "--drill", "--identity", identity, backup_source.backup]).exit_code == 2
    assert not (tmp_path / "x").exists()

    damaged = tmp_path / "damaged.cpb"
    data = bytearray(backup_source.backup.read_bytes())
    data[len(data) // 2] ^= 0x80
    damaged.write_bytes(bytes(data))
    target = targets.bare(backup_source.backend)
    refused = run(["restore", "--identity", identity, damaged, "--json"], backup_source.env(target))
    assert refused.exit_code == 1
    assert json.loads(refused.stdout) == {
        "ok": False,
        "error": "the backup cannot be opened: it is damaged, cut short or not an age file "
        "(decryption error); the target database was left as it was",
    }


def test_a_backup_whose_event_cannot_be_recorded_is_removed(
    backup_source: BackupSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reference_app.audit.service

    def refuse(*_args: object, **_kwargs: object) -> int:
        raise OperationalError("INSERT INTO audit_events", {}, Exception("database is locked"))

    monkeypatch.setattr(reference_app.audit.service, "record", refuse)
    out = tmp_path / "b.cpb"
    result = run(
        ["backup", "--recipient", backup_source.recipient_file, "--out", out],
        backup_source.env(),
    )
    assert result.exit_code == 1
    assert "could not be recorded" in result.output
    assert list(tmp_path.iterdir()) == []
