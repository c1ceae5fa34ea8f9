"""Where the tests' PostgreSQL and Redis come from (tests.fixtures.services.choose): the
environment's URL, else a container when Docker answers, else the local binaries, else a skip
with the reason, or a failure when the service is required (CI)."""

from __future__ import annotations

import pytest

from tests.fixtures.services import Choice, Source, choose


def _never() -> bool:
    raise AssertionError("this probe must not be called")


def _yes() -> bool:
    return True


def _no() -> bool:
    return False


def test_a_url_wins_without_probing_docker_or_binaries() -> None:
    got = choose("Redis", url="redis://somewhere:6379/0", docker=_never, local=_never, require=True)
    assert got == Choice(Source.URL)


def test_docker_comes_before_the_local_binaries() -> None:
    assert choose("PostgreSQL", url=None, docker=_yes, local=_never, require=False).source is (
        Source.CONTAINER
    )


def test_local_binaries_without_docker() -> None:
    assert choose("PostgreSQL", url="", docker=_no, local=_yes, require=True).source is (
        Source.LOCAL
    )


@pytest.mark.parametrize(("require", "source"), [(False, Source.SKIP), (True, Source.FAIL)])
def test_nothing_available_skips_with_the_reason_or_fails_when_required(
    require: bool, source: Source
) -> None:
    got = choose("Redis", url=None, docker=_no, local=_no, require=require)
    assert got.source is source
    assert "no Redis" in got.reason
