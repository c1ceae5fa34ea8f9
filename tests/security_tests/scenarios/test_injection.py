"""The injection scenarios' judgement of an answer, and the scenarios' check character."""

from __future__ import annotations

import secrets

import httpx
import pytest

from reference_app.kit import identifiers
from security_tests.engine import Finding
from security_tests.scenarios import _common, injection


def _answer(
    status: int, body: bytes | str, content_type: str = "application/json"
) -> httpx.Response:
    request = httpx.Request("POST", "http://registry.test/api/v1/children/search")
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(
        status, content=content, headers={"content-type": content_type}, request=request
    )


ENVELOPE = '{"error": {"code": "invalid_request", "message": "%s", "request_id": "1"}}'


@pytest.mark.parametrize(
    "answer",
    [
        _answer(200, '{"results": [], "count": 0, "refine_search": false}'),
        _answer(422, ENVELOPE % "family_name: Input should be a valid string"),
    ],
)
def test_a_clean_answer_passes(answer: httpx.Response) -> None:
    injection.clean(answer, "probe")


@pytest.mark.parametrize(
    "answer",
    [
        _answer(500, ENVELOPE % "Something went wrong"),
        _answer(422, '{"detail": "bad"}'),
        _answer(400, ENVELOPE % 'near \\"OR\\": syntax error'),
        _answer(400, ENVELOPE % "sqlalchemy.exc.OperationalError"),
        _answer(400, "Traceback (most recent call last):\n  oops", "text/plain"),
        _answer(404, ENVELOPE % "no file /srv/app/reference_app/children/service.py"),
    ],
)
def test_a_leaking_or_failing_answer_is_a_finding(answer: httpx.Response) -> None:
    with pytest.raises(Finding):
        injection.clean(answer, "probe")


def test_a_search_finding_more_than_the_honest_one_is_a_finding() -> None:
    widened = _answer(200, '{"results": [{"child_id": "A"}, {"child_id": "B"}], "count": 2}')
    refine = _answer(200, '{"results": [], "count": 0, "refine_search": true}')
    for answer in (widened, refine):
        with pytest.raises(Finding):
            injection.no_more_than(answer, 1, "probe")
    injection.no_more_than(_answer(200, '{"results": [{"child_id": "A"}]}'), 1, "probe")


def test_the_check_character_is_the_registrys() -> None:
    for _ in range(200):
        payload = "".join(secrets.choice(identifiers.ALPHABET) for _ in range(12))
        assert _common.check_character(payload) == identifiers.check_character(payload)
        wrong = injection.wrong_check_character(payload + identifiers.check_character(payload))
        assert not identifiers.is_valid(wrong)
