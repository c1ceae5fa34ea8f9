"""Without the `harness` extra, the harness's commands refuse in one line naming it (exit 2),
and the registry's commands under `contactpoint` are untouched.

The extra's absence is made by naming a module no environment has among the ones it brings;
the long stage (tests/test_layers.py) checks the same in an install that really lacks it.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from contactpoint import extra
from contactpoint.cli import HARNESS, main
from reference_app.cli import main as registry_main
from reference_app.kit.exits import ExitCode

REFUSAL = "needs the harness extra: pip install 'contactpoint-harness[harness]'"


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extra, "MODULES", ("contactpoint_module_no_environment_has",))


@pytest.mark.usefixtures("without_extra")
@pytest.mark.parametrize("command", HARNESS)
def test_a_harness_command_refuses_naming_the_extra(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [command, "--reference-dir", str(tmp_path / "r")])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.output.splitlines() == [f"error: `contactpoint {command}` {REFUSAL}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("without_extra")
def test_serve_demo_refuses_before_making_anything(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = CliRunner().invoke(main, ["serve", "--demo", "--data-dir", str(data)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.output.splitlines() == [f"error: `contactpoint serve --demo` {REFUSAL}"]
    assert not data.exists()


@pytest.mark.usefixtures("without_extra")
def test_registry_commands_run_without_the_extra(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    result = CliRunner().invoke(main, ["keys", "generate", "--out", str(keys)])
    assert result.exit_code == 0, result.output
    assert keys.exists()


def test_a_stand_in_for_an_unimportable_command_refuses_with_any_arguments() -> None:
    stand_in = extra.absent("attack", ModuleNotFoundError("No module named 'yaml'", name="yaml"))
    result = CliRunner().invoke(stand_in, ["--reference", "--json", "x.json"])
    assert result.exit_code == ExitCode.USAGE
    assert result.output.splitlines() == [f"error: `contactpoint attack` {REFUSAL}"]


def test_a_missing_module_of_the_project_itself_is_not_taken_for_a_missing_extra() -> None:
    broken = ModuleNotFoundError("No module named 'loadtests.gone'", name="loadtests.gone")
    with pytest.raises(ModuleNotFoundError):
        extra.absent("load", broken)


def test_contactpoint_holds_every_registry_command() -> None:
    assert set(registry_main.commands) <= set(main.commands)
    assert set(main.commands) - set(registry_main.commands) == {*HARNESS, "deploy"}
    serve = main.commands["serve"]
    assert isinstance(serve, click.Command)
    assert {p.name for p in serve.params} == {
        p.name for p in registry_main.commands["serve"].params
    } | {
        "demo",
        "data_dir",
        "children",
    }
