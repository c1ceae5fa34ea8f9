"""The `harness` extra: whether it is installed, and a one-line refusal where it is not.

A registry host installs the project without extras; the `contactpoint` command is there too,
and its harness commands say which extra they need instead of failing on an import.
"""

from __future__ import annotations

import importlib.util
from typing import NoReturn

import click

from reference_app.kit.exits import CommandFailure, usage

EXTRA = "harness"
INSTALL = f"pip install 'contactpoint-harness[{EXTRA}]'"
# What the extra brings that the registry's own install does not (by import name).
MODULES = ("faker", "hdrh", "httpx", "locust", "numpy", "pyarrow", "yaml")
# The harness's own packages: a missing one of these is a broken install, not a missing extra.
PACKAGES = (
    "contactpoint",
    "loadtests",
    "observability",
    "reference_app",
    "security_tests",
    "synthetic_data",
)


def missing() -> list[str]:
    """The extra's modules this environment cannot import."""
    return [name for name in MODULES if importlib.util.find_spec(name) is None]


def refusal(command: str) -> CommandFailure:
    return usage(f"`contactpoint {command}` needs the {EXTRA} extra: {INSTALL}")


def require(command: str) -> None:
    """Refuse ``command`` (exit 2, one line) unless the harness extra is installed."""
    if missing():
        raise refusal(command)


def absent(name: str, error: ModuleNotFoundError) -> click.Command:
    """A stand-in for harness command ``name`` whose module cannot be imported without the
    extra: it takes any arguments and refuses in one line."""
    if (error.name or "").partition(".")[0] in PACKAGES:
        raise error

    def refuse() -> NoReturn:
        raise refusal(name)

    return click.Command(
        name,
        callback=refuse,
        help=f"Needs the {EXTRA} extra: {INSTALL}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
