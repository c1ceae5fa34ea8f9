"""`contactpoint generate` and `contactpoint bench generate` as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from contactpoint.cli import main


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def test_help_names_every_option(cli: CliRunner) -> None:
    result = cli.invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    for option in ("--children", "--seed", "--database", "--out", "--workers", "--shard"):
        assert option in result.output


@pytest.mark.parametrize(
    "args",
    [
        [],  # no target
        ["--out", "x", "--database", "sqlite:///x.db"],  # two targets
        ["--out", "x", "--shard", "3/2"],
        ["--out", "x", "--shard", "half"],
        ["--out", "x", "--children", "0"],
    ],
)
def test_bad_usage_exits_2(cli: CliRunner, args: list[str], tmp_path: Path) -> None:
    result = cli.invoke(main, ["generate", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_database_target_without_keys_exits_1_with_the_reason(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONTACTPOINT_KEYS_FILE", raising=False)
    result = cli.invoke(
        main, ["generate", "--children", "100", "--database", f"sqlite:///{tmp_path / 'r.db'}"]
    )
    assert result.exit_code == 1
    assert "CONTACTPOINT_KEYS_FILE" in result.output


def test_parquet_run_reports_json_and_writes_every_table(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "population"
    result = cli.invoke(
        main,
        ["generate", "--children", "2000", "--out", str(out), "--workers", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["children"] == 2000
    assert report["rows"]["children"] == 2000
    for table in ("children", "carers", "child_carers", "involvements", "organisations"):
        rows = sum(pq.read_metadata(p).num_rows for p in (out / table).glob("*.parquet"))
        assert rows == report["rows"][table], table
    assert (out / "manifest.json").exists()
    assert (out / "personas.json").stat().st_mode & 0o077 == 0
    # A rerun finds every chunk done and writes the same side files.
    before = (out / "children_sample.jsonl").read_bytes()
    again = cli.invoke(main, ["generate", "--children", "2000", "--out", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["skipped"] == report["chunks"]
    assert (out / "children_sample.jsonl").read_bytes() == before


def test_bench_generate_reports_both_rates_and_the_machine(cli: CliRunner, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    result = cli.invoke(
        main,
        [
            "bench",
            "generate",
            "--children",
            "5000",
            "--faker-records",
            "200",
            "--min-ratio",
            "0",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["faker"]["records"] == 200
    assert data["generator"]["children"] >= 5000
    assert data["ratio"] == pytest.approx(
        data["generator"]["per_second"] / data["faker"]["per_second"], rel=0.01
    )
    assert data["machine"]["cores"] >= 1
    assert "ratio" in result.output


def test_bench_fails_below_the_minimum_ratio(cli: CliRunner) -> None:
    result = cli.invoke(
        main,
        [
            "bench",
            "generate",
            "--children",
            "1000",
            "--faker-records",
            "100",
            "--min-ratio",
            "1000000",
        ],
    )
    assert result.exit_code == 1
