"""What every `contactpoint` command's exit code means, and a user's mistakes told in one line.

| code | meaning |
| --- | --- |
| 0 | pass: the job ran and found nothing wrong |
| 1 | a check ran and found a problem (a weakness, a tampered log, a failed SLO) |
| 2 | usage or configuration: a wrong option, URL, file or key; nothing was run |
| 3 | could not judge: the run was invalid (the load generator fell behind, say) |
| 4 | the target or a dependency is unreachable |

A configuration mistake is one line saying what is wrong and what to do, never a traceback;
`contactpoint --debug COMMAND` shows the traceback.

Kept light (click only): it is imported whenever `contactpoint` starts.
"""

from __future__ import annotations

import re
import sqlite3
from enum import IntEnum
from pathlib import Path
from typing import IO, Any

import click


class ExitCode(IntEnum):
    PASS = 0
    FOUND = 1
    USAGE = 2
    INVALID = 3
    UNREACHABLE = 4


class CommandFailure(click.ClickException):
    """A failure a user can act on: one line, a hint, and the exit code that names its kind."""

    def __init__(self, message: str, code: ExitCode, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint
        self.exit_code = int(code)  # type: ignore[misc]  # click reads it when it exits

    def format_message(self) -> str:
        return self.message + (f"\n  what to do: {self.hint}" if self.hint else "")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def usage(message: str, hint: str | None = None) -> CommandFailure:
    return CommandFailure(message, ExitCode.USAGE, hint=hint)


def unreachable(message: str, hint: str | None = None) -> CommandFailure:
    return CommandFailure(message, ExitCode.UNREACHABLE, hint=hint)


# Driver messages that mean the server was never reached (as against reached and refusing).
_UNREACHABLE = re.compile(
    r"connection refused|timeout expired|timed out|could not translate host name|"
    r"no route to host|network is unreachable|name or service not known|"
    r"server closed the connection|connection reset|could not connect|error -?\d+ connecting",
    re.IGNORECASE,
)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain(exc: BaseException) -> CommandFailure | None:
    """The one-line failure for a known configuration or reachability error, else None."""
    from reference_app.kit.keys import KeyMaterialError

    if isinstance(exc, CommandFailure):
        return exc
    if isinstance(exc, KeyMaterialError):
        return usage(str(exc))
    failure = _database_failure(exc) or _network_failure(exc)
    if failure is not None:
        return failure
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return usage(f"{exc.strerror or 'no such file'}: {exc.filename}")
    if isinstance(exc, PermissionError):
        return usage(f"permission denied: {exc.filename}")
    return None


def _database_failure(exc: BaseException) -> CommandFailure | None:
    import sqlalchemy.exc as sa

    url_hint = "check --database (or CONTACTPOINT_DATABASE_URL)"
    if isinstance(exc, sa.NoSuchModuleError | sa.ArgumentError):
        return usage(
            f"not a database URL this tool can open: {_first_line(exc)}",
            "give sqlite:///PATH or postgresql://USER@HOST:PORT/NAME",
        )
    if not isinstance(exc, sa.DBAPIError):
        return None
    line = _first_line(exc)
    if re.search(r"no such table|relation .* does not exist", line, re.IGNORECASE):
        return usage(
            "the database has no registry schema",
            "run `contactpoint db upgrade --database URL` first",
        )
    if isinstance(exc.orig, sqlite3.Error):
        return usage(f"the SQLite database cannot be used: {line}", url_hint)
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        if _UNREACHABLE.search(line):
            return unreachable(f"the database does not answer: {line}", url_hint)
        return usage(f"the database refused the connection: {line}", url_hint)
    return None


def _network_failure(exc: BaseException) -> CommandFailure | None:
    try:
        import httpx
    except ImportError:  # a registry-only install: httpx comes with the harness extra
        return None
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return unreachable(f"the target does not answer: {_first_line(exc)}", "check --target")
    return None


def existing_sqlite(url: str) -> None:
    """Refuse a ``sqlite:///PATH`` whose file does not exist (SQLite would create it empty)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # explained where the engine is made
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).exists():
        raise usage(
            f"no database at {parsed.database}",
            "check the path, or create one with `contactpoint db upgrade --database URL`",
        )
