"""Backups are age files: the standard `age` tool opens one with the identity, a wrong key fails
cleanly with the target untouched, and a backup in the old envelope format still restores, with
a deprecation message, for one release."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result

from reference_app.backup.restore import restore_backup, verify_file
from reference_app.cli import main
from reference_app.kit.agefile import Format, load_identities, load_recipients
from reference_app.kit.legacy_envelope import MAGIC as LEGACY_MAGIC
from tests.fixtures.backup import BackupSource, Targets, copy_of, new_key_pair
from tests.reference_app.backup.test_restore import target_state

LEGACY = Path(__file__).parents[2] / "fixtures" / "legacy"
LEGACY_BACKUP = LEGACY / "backup-0017.cpb"  # 152 local authorities and one audit event


def run(args: list[object], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def age_binary() -> str:
    """The `age` command-line tool (Debian's package `age`; .ci/run installs it)."""
    found = shutil.which("age")
    assert found, "the age command-line tool is not installed: apt-get install -y age"
    return found


def test_the_age_tool_opens_a_backup_with_the_identity(backup_source: BackupSource) -> None:
    opened = subprocess.run(
        [age_binary(), "-d", "-i", str(backup_source.identity_file), str(backup_source.backup)],
        capture_output=True,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    header = json.loads(opened.stdout.split(b"\n", 1)[0])
    assert header["format"] == "contactpoint-backup"
    last = json.loads(opened.stdout.rstrip(b"\n").rsplit(b"\n", 1)[1])
    assert last["manifest"]["tables"]["children"]["rows"] == 303
    assert last["manifest"]["tables"] == {
        name: s.to_doc() for name, s in backup_source.result.manifest.tables.items()
    }


def test_a_wrong_key_fails_cleanly_and_restores_nothing(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    other, _ = new_key_pair(tmp_path / "other")
    target = targets.migrated(backup_source.backend)
    before = target_state(target)
    refused = run(
        ["restore", "--identity", other, backup_source.backup, "--json"],
        backup_source.env(target),
    )
    assert refused.exit_code == 1  # refused, the database as it was (2 is bad usage)
    assert json.loads(refused.stdout) == {
        "ok": False,
        "error": "the backup cannot be opened: it is sealed to another key, or its header is "
        "damaged (no identity given matches); the target database was left as it was",
    }
    assert target_state(target) == before
    bare = targets.bare(backup_source.backend)
    before = target_state(bare)
    again = run(["restore", "--identity", other, backup_source.backup], backup_source.env(bare))
    assert again.exit_code == 1
    assert "sealed to another key" in again.output
    # Nothing restored: no table, no row (the command's own connection may leave an empty file).
    assert before in (None, (set(), set(), {}))
    assert target_state(bare) in (None, (set(), set(), {}))


def test_a_backup_sealed_to_two_recipients_opens_with_either(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> None:
    first, first_public = new_key_pair(tmp_path / "a")
    second, second_public = new_key_pair(tmp_path / "b")
    both = tmp_path / "recipients.txt"
    both.write_text(
        f"# the restore team's two custodians\n{first_public.read_text()}"
        f"{second_public.read_text()}"
    )
    made = run(  # from a copy: the backup records an event, and the source must not change
        ["backup", "--recipient", both, "--out", tmp_path / "two.cpb", "--json"],
        backup_source.env(copy_of(backup_source, targets)),
    )
    assert made.exit_code == 0, made.output
    for identity in (first, second):
        verified = verify_file(tmp_path / "two.cpb", load_identities(identity.read_bytes()))
        assert verified.format is Format.AGE
        assert verified.manifest.tables == backup_source.result.manifest.tables
    assert len(load_recipients(both.read_text())) == 2


def test_a_backup_in_the_old_envelope_still_restores(targets: Targets) -> None:
    assert LEGACY_BACKUP.read_bytes().startswith(LEGACY_MAGIC)
    url = targets.bare("sqlite")
    identities = load_identities((LEGACY / "identity.pem").read_bytes())
    result = restore_backup(url, identities, LEGACY_BACKUP)
    assert result.file.format is Format.LEGACY
    assert all(c.ok for c in result.checks)
    assert result.manifest.tables["local_authorities"].rows == 152
    assert result.to_dict()["file_format"] == "legacy-envelope"


def test_an_old_backup_is_named_deprecated_and_needs_its_pem_key(
    backup_source: BackupSource, targets: Targets
) -> None:
    # Said first, whatever the restore then makes of the target.
    with_pem = run(
        ["restore", "--identity", LEGACY / "identity.pem", LEGACY_BACKUP],
        backup_source.env(targets.migrated("sqlite")),
    )
    assert "deprecated: this file is in the pre-age envelope format" in with_pem.stderr
    with_age_key = run(
        ["restore", "--identity", backup_source.identity_file, LEGACY_BACKUP, "--json"],
        backup_source.env(targets.bare("sqlite")),
    )
    assert with_age_key.exit_code == 1
    assert "give the PEM private key it was sealed to" in json.loads(with_age_key.stdout)["error"]


def test_a_recipient_file_must_hold_age_keys(backup_source: BackupSource, tmp_path: Path) -> None:
    pem = LEGACY / "identity.pem"
    refused = run(["backup", "--recipient", pem, "--out", tmp_path / "x"], backup_source.env())
    assert refused.exit_code == 2
    assert "PEM key is no longer accepted" in refused.output
