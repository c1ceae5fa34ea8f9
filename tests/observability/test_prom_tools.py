"""A missing Prometheus tool is a skip with the reason outside CI, and a failure under
CONTACTPOINT_REQUIRE_PROMETHEUS=1 (as .ci/run sets it)."""

from __future__ import annotations

import pytest

from tests.observability.prom_tools import ENV_REQUIRE, tool

MISSING = "promtool-not-installed-here"


def test_a_missing_tool_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        tool(MISSING)


def test_a_missing_tool_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match=ENV_REQUIRE):
        tool(MISSING)
