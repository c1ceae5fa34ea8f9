"""`contactpoint retention` as an operator meets it: summary, --json, --dry-run, --as-of, exit
codes, progress on stderr."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from reference_app.cli import main
from reference_app.retention.service import years_before
from tests.fixtures.world import PrivateWorld


@pytest.fixture
def cli(private_world: PrivateWorld, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CONTACTPOINT_KEYS_FILE", str(private_world.keys_file))
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "test")
    return CliRunner()


def retention(cli: CliRunner, world: PrivateWorld, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(main, ["retention", "--database", world.database.app_url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_archive_then_purge_by_date_with_json_and_a_quiet_second_run(
    cli: CliRunner, private_world: PrivateWorld
) -> None:
    world = private_world
    today = world.clock.now().date()
    world.child(date_of_birth=years_before(today, 18).isoformat())
    world.child(date_of_birth=years_before(today, 3).isoformat())

    code, out, err = retention(cli, world, "--as-of", today.isoformat(), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["archived"], report["purged"], report["live_checked"]) == (1, 0, 2)
    assert report["changed"] is True
    assert report["as_of"] == today.isoformat()
    assert "archive: 2 record(s) to check" in err

    code, out, _ = retention(cli, world, "--as-of", today.isoformat())
    assert code == 0
    assert out.startswith(f"nothing to do as of {today}")

    purge_day = (years_before(today, -6)).isoformat()
    code, out, _ = retention(cli, world, "--as-of", purge_day, "--dry-run")
    assert code == 0
    assert "would archive 0 and purge 1 (nothing changed)" in out
    code, out, _ = retention(cli, world, "--as-of", purge_day)
    assert code == 0
    assert "purged 1 children and 1 carers" in out


def test_a_future_day_is_refused_in_production_with_exit_1(
    cli: CliRunner, private_world: PrivateWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "production")
    tomorrow = private_world.clock.now().date() + timedelta(days=1)
    code, out, err = retention(cli, private_world, "--as-of", tomorrow.isoformat())
    assert code == 1
    assert "refused" in err
    assert out == ""


@pytest.mark.parametrize(
    "args", [["--as-of", "2026-13-01"], ["--as-of", "soon"], ["--batch-size", "0"]]
)
def test_bad_usage_exits_2(cli: CliRunner, private_world: PrivateWorld, args: list[str]) -> None:
    code, _, err = retention(cli, private_world, *args)
    assert code == 2
    assert "Traceback" not in err
