"""What every `contactpoint` command shares: the ``--database`` option and an instance context.

Kept light (click and settings only): it is imported whenever `contactpoint` starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from reference_app.config import Settings

if TYPE_CHECKING:
    from reference_app.context import AppContext

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def database_option(
    help_text: str = "Database URL (default: CONTACTPOINT_DATABASE_URL).",
) -> Decorator:
    """The ``--database URL`` option, passed to the command as ``database``."""
    return click.option("--database", "database", metavar="URL", default=None, help=help_text)


DATABASE = database_option()


def settings_for(database: str | None) -> Settings:
    """The environment's settings, with ``database`` in place of the configured URL if given."""
    settings = Settings()
    if database:
        settings = settings.model_copy(update={"database_url": database})
    return settings


@contextmanager
def instance(database: str | None, *, create: bool = False) -> Iterator[AppContext]:
    """Open an instance context for one command, and close its connections after.

    A SQLite file that does not exist is refused, not created, unless ``create`` (`restore`
    makes its target; `db upgrade` and `generate` open their own).
    """
    from reference_app.context import build_context
    from reference_app.kit.exits import existing_sqlite, usage
    from reference_app.kit.keys import KeyMaterialError

    settings = settings_for(database)
    if not create:
        existing_sqlite(settings.database_url)
    try:
        ctx = build_context(settings)
    except KeyMaterialError as exc:
        raise usage(str(exc)) from exc
    try:
        yield ctx
    finally:
        ctx.engine.dispose()
