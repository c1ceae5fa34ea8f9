"""Every command's exit code names one kind of outcome, and a configuration mistake is one line.

0 pass, 1 a check found a problem, 2 usage or configuration, 3 could not judge, 4 unreachable.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reference_app.cli import main
from reference_app.kit.exits import ExitCode


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys.json"
    assert CliRunner().invoke(main, ["keys", "generate", "--out", str(path)]).exit_code == 0
    monkeypatch.setenv("CONTACTPOINT_KEYS_FILE", str(path))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verify(database: str, *extra: str) -> Result:
    return CliRunner().invoke(main, [*extra, "audit", "verify", "--database", database])


def one_line_error(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines, "nothing was said"
    assert lines[0].startswith("error: "), result.output
    return result.output


@pytest.mark.usefixtures("keys_file")
def test_a_sqlite_path_that_does_not_exist_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    result = verify(f"sqlite:///{missing}")
    assert result.exit_code == ExitCode.USAGE
    assert "no database at" in one_line_error(result)
    assert not missing.exists()


@pytest.mark.usefixtures("keys_file")
@pytest.mark.parametrize(
    ("content", "said"),
    [(b"not a database at all, just text" * 40, "cannot be used"), (b"", "no registry schema")],
)
def test_a_file_that_is_not_a_registry_is_a_configuration_error(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "odd.db"
    path.write_bytes(content)
    result = verify(f"sqlite:///{path}")
    assert result.exit_code == ExitCode.USAGE
    assert said in one_line_error(result)


@pytest.mark.usefixtures("keys_file")
def test_an_unknown_url_scheme_is_a_usage_error() -> None:
    result = verify("nosuchdb://somewhere/x")
    assert result.exit_code == ExitCode.USAGE
    assert "not a database URL" in one_line_error(result)


@pytest.mark.usefixtures("keys_file")
def test_a_database_that_does_not_answer_is_unreachable() -> None:
    result = verify(f"postgresql://postgres@127.0.0.1:{closed_port()}/x?connect_timeout=5")
    assert result.exit_code == ExitCode.UNREACHABLE
    assert "does not answer" in one_line_error(result)


@pytest.mark.postgres
@pytest.mark.usefixtures("keys_file")
def test_a_database_the_server_refuses_is_a_configuration_error(postgres_server: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_server).set(database="contactpoint_no_such_database")
    result = verify(url.render_as_string(hide_password=False))
    assert result.exit_code == ExitCode.USAGE
    assert "refused the connection" in one_line_error(result)


def test_missing_keys_are_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONTACTPOINT_KEYS_FILE", raising=False)
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    result = verify(f"sqlite:///{path}")
    assert result.exit_code == ExitCode.USAGE
    assert "no key material" in one_line_error(result)


@pytest.mark.usefixtures("keys_file")
def test_debug_shows_the_trace() -> None:
    result = verify("nosuchdb://somewhere/x", "--debug")
    assert result.exit_code not in (0, ExitCode.USAGE)
    assert result.exception is not None
    assert not isinstance(result.exception, SystemExit)


def test_the_help_states_the_exit_codes() -> None:
    result = CliRunner().invoke(main, ["--help"])
    for code in ExitCode:
        assert f"  {int(code)}  " in result.output
