"""How a stage of scenarios is judged from their results."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from contactpoint.assure import stages
from security_tests.engine import Status


def _judged(*statuses: Status) -> str:
    result = stages.StageResult("static", "static checks")
    stages.scenario_stage(result, [SimpleNamespace(status=s) for s in statuses])
    return result.status


@pytest.mark.parametrize(
    ("statuses", "judged"),
    [
        ((Status.PASSED, Status.SKIPPED), stages.PASSED),
        ((Status.PASSED, Status.FAILED), stages.FAILED),
        ((Status.SKIPPED, Status.ERROR), stages.FAILED),
        # Every scenario skipped (bandit with no source to read): nothing was shown.
        ((Status.SKIPPED,), stages.NOT_TESTED),
        ((), stages.NOT_TESTED),
    ],
)
def test_a_stage_passes_only_on_a_scenario_that_passed(
    statuses: tuple[Status, ...], judged: str
) -> None:
    assert _judged(*statuses) == judged
