"""The restore drill: passes right after a backup, and names the table when the scratch copy or
the live source differs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from reference_app.cli import main
from reference_app.kit.db import make_engine
from tests.fixtures.backup import BackupSource, Targets, copy_of, flip_a_flag, tamper_loader


def run(args: list[Any], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


@pytest.fixture
def backed_up(
    backup_source: BackupSource, targets: Targets, tmp_path: Path
) -> tuple[str, Path, dict[str, str]]:
    """A live registry and a backup just made of it with `contactpoint backup`."""
    source = copy_of(backup_source, targets)
    out = tmp_path / "registry.cpb"
    env = backup_source.env(source)
    made = run(["backup", "--recipient", backup_source.recipient_file, "--out", out], env)
    assert made.exit_code == 0, made.output
    return source, out, env


def drill(
    backup_source: BackupSource, source: str, out: Path, env: dict[str, str], *extra: Any
) -> Result:
    args = ["restore", "--drill", "--source", source]
    return run([*args, "--identity", backup_source.identity_file, out, *extra], env)


def test_the_drill_passes_right_after_a_backup(
    backup_source: BackupSource,
    backed_up: tuple[str, Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = drill(backup_source, *backed_up, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["failed"] == []
    tables = {t["table"]: t for t in report["tables"]}
    assert all(t["scratch"] == "match" for t in tables.values())
    # The backup recorded backup:created after its snapshot: the trail grew, nothing changed.
    assert tables["audit_events"]["source"] == "grew"
    assert tables["audit_events"]["source_newer_rows"] == 1
    assert tables["children"]["source"] == "match"
    assert tables["children"]["source_rows"] == 303  # 300 and an export's 3 watermarks
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch file is gone


def test_the_drill_restores_into_a_given_scratch_database(
    backup_source: BackupSource, backed_up: tuple[str, Path, dict[str, str]], targets: Targets
) -> None:
    scratch = targets.bare(backup_source.backend)
    result = drill(backup_source, *backed_up, "--scratch", scratch)
    assert result.exit_code == 0, result.output
    assert "drill passed" in result.output
    busy = drill(backup_source, *backed_up, "--scratch", scratch)
    assert busy.exit_code == 1
    assert "not empty" in busy.output


def test_a_changed_source_fails_the_drill_naming_the_table(
    backup_source: BackupSource, backed_up: tuple[str, Path, dict[str, str]]
) -> None:
    source = backed_up[0]
    engine = make_engine(source)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE children SET gender = 'unknown' WHERE id = (SELECT min(id) FROM children)")
        )
    engine.dispose()
    result = drill(backup_source, *backed_up, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == ["children"]
    [children] = [t for t in report["tables"] if t["table"] == "children"]
    assert (children["scratch"], children["source"]) == ("match", "differs")
    human = drill(backup_source, *backed_up)
    assert human.exit_code == 1
    assert "drill FAILED: children differ" in human.output


def test_a_scratch_copy_unlike_the_backup_fails_the_drill_naming_the_table(
    backup_source: BackupSource,
    backed_up: tuple[str, Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tamper_loader(monkeypatch, flip_a_flag)
    result = drill(backup_source, *backed_up, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == ["involvements"]
    assert "involvements" in report["restore_error"]
    [involvements] = [t for t in report["tables"] if t["table"] == "involvements"]
    assert (involvements["scratch"], involvements["source"]) == ("differs", "match")


def test_a_damaged_backup_fails_the_drill(
    backup_source: BackupSource, backed_up: tuple[str, Path, dict[str, str]]
) -> None:
    source, out, env = backed_up
    out.write_bytes(out.read_bytes()[:-10])
    result = drill(backup_source, source, out, env)
    assert result.exit_code == 1
    assert "drill failed: the backup cannot be opened: it is damaged, cut short" in result.output


def _change(source: str, *statements: str) -> None:
    engine = make_engine(source)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Past the trail's append-only triggers, as an intruder with the owner's rights.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_bookkeeping_a_running_registry_rewrites_passes_as_changed(
    backup_source: BackupSource, backed_up: tuple[str, Path, dict[str, str]]
) -> None:
    # The detector moves its cursors every second on a live host.
    _change(backed_up[0], "DELETE FROM detector_cursors", "DELETE FROM audit_pending")
    result = drill(backup_source, *backed_up, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    sources = {t["table"]: t["source"] for t in report["tables"]}
    changed = {name for name, status in sources.items() if status == "changed"}
    assert changed <= {"detector_cursors", "audit_pending"}
    assert changed  # the fixture's registry has cursors or markers to lose


def test_on_a_live_source_records_may_move_on_but_the_history_may_not(
    backup_source: BackupSource, backed_up: tuple[str, Path, dict[str, str]]
) -> None:
    source = backed_up[0]
    _change(
        source,
        "UPDATE children SET gender = 'unknown' WHERE id = (SELECT min(id) FROM children)",
    )
    strict = drill(backup_source, *backed_up, "--json")
    assert strict.exit_code == 1
    live = drill(backup_source, *backed_up, "--live", "--json")
    assert live.exit_code == 0, live.output
    [children] = [t for t in json.loads(live.stdout)["tables"] if t["table"] == "children"]
    assert children["source"] == "changed"
    # An edit to the trail is never a live host's business.
    _change(source, "DELETE FROM audit_events WHERE id = (SELECT min(id) FROM audit_events)")
    tampered = drill(backup_source, *backed_up, "--live", "--json")
    assert tampered.exit_code == 1
    assert "audit_events" in json.loads(tampered.stdout)["failed"]
