"""`contactpoint assure` refuses bad usage with exit 2 before it runs anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from contactpoint.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "http://127.0.0.1:9"], "together"),
        (["--database", "sqlite:///registry.db"], "--database goes with --target"),
        (["--fail-on", "severe"], "severe"),
        (["--load-personas", "{crowd}"], "--load-personas goes with --target"),
    ],
)
def test_bad_usage_exits_2(args: list[str], message: str, tmp_path: Path) -> None:
    crowd = tmp_path / "crowd.json"
    crowd.write_text("[]")
    args = [a.format(crowd=crowd) for a in args]
    result = CliRunner().invoke(main, ["assure", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_criteria_that_do_not_parse_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "criteria.yaml"
    bad.write_text(
        "schema: contactpoint-assure-criteria/1\nwaves:\n  pilot:\n    no_go: {slo: 1}\n"
    )
    result = CliRunner().invoke(main, ["assure", "--criteria", str(bad)])
    assert result.exit_code == 2
    assert "waves.pilot.no_go.slo" in result.output
