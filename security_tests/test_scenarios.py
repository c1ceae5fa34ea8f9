"""Every registered scenario as a pytest item (see security_tests/plugin.py)."""

from __future__ import annotations

from typing import Any

import pytest

from security_tests.engine import Scenario
from security_tests.plugin import judge
from security_tests.target import Target


def test_scenario(
    security_scenario: Scenario,
    security_target: Target,
    pytestconfig: pytest.Config,
    record_property: Any,
) -> None:
    judge(pytestconfig, security_target, security_scenario, record_property)
