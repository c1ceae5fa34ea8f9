"""Telemetry tests leave the process's logging as they found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from observability.logs import remove_json_logging


@pytest.fixture(autouse=True)
def _plain_logging_after() -> Iterator[None]:
    yield
    remove_json_logging()
