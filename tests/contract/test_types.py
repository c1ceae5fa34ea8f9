"""Strict types at the edge: dates only as ISO text and within sensible bounds, one answer for
every body that is not JSON of the declared shape, HEAD where GET is, a full Allow on 405."""

from __future__ import annotations

import datetime as dt
from typing import Any, get_args

import pytest
from annotated_types import MaxLen

from reference_app.access.permissions import Role
from reference_app.api import request_models, route_table
from reference_app.kit.schemas import iso_date
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, World, unique_name

CHILD = {
    "given_name": "Ivy",
    "gender": "female",
    "address": {"line1": "3 Brook Lane", "town": "Preston", "postcode": "PR2 3ZZ"},
}
# Midnight 1 January 2016 in seconds since 1970: read as a date by pydantic's lax mode.
MIDNIGHT_2016 = 1451606400


def _is_date(annotation: Any) -> bool:
    return annotation is dt.date or any(_is_date(arg) for arg in get_args(annotation))


def _strict(field: Any) -> bool:
    checks = {getattr(m, "func", None) for m in field.metadata}
    for arg in get_args(field.annotation):
        checks |= {getattr(m, "func", None) for m in getattr(arg, "__metadata__", ())}
    return iso_date in checks


def test_every_date_field_of_every_request_body_is_strict() -> None:
    fields = [
        (f"{model.__name__}.{name}", field)
        for model in request_models()
        for name, field in model.model_fields.items()
        if _is_date(field.annotation)
    ]
    assert len(fields) >= 6
    assert [name for name, field in fields if not _strict(field)] == []


def _bounded(field: Any) -> bool:
    metadata = list(field.metadata)
    for arg in get_args(field.annotation):
        metadata += list(getattr(arg, "__metadata__", ()))
    return any(
        isinstance(m, MaxLen) or getattr(m, "max_length", None) or getattr(m, "pattern", None)
        for m in metadata
    )


def test_every_text_field_of_every_request_body_is_bounded() -> None:
    texts = [
        (f"{model.__name__}.{name}", field)
        for model in request_models()
        for name, field in model.model_fields.items()
        if field.annotation is str or str in get_args(field.annotation)
    ]
    assert len(texts) > 20
    assert [name for name, field in texts if not _bounded(field)] == []


@pytest.mark.parametrize(
    "value", [MIDNIGHT_2016, 0, True, 2016.0, "2016-01-01T00:00:00", "2016-02-30"]
)
def test_a_date_of_birth_is_iso_text_only(world: World, value: Any) -> None:
    response = world.client.post(
        "/api/v1/children",
        json={**CHILD, "family_name": unique_name(), "date_of_birth": value},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_A),
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_search_by_a_number_of_seconds_is_refused(world: World) -> None:
    response = world.client.post(
        "/api/v1/children/search",
        json={"family_name": unique_name(), "date_of_birth": MIDNIGHT_2016},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_A),
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("days_ago", "status"),
    [(-1, 422), (0, 201), (365 * 25 - 10, 201), (365 * 25 + 10, 422)],
)
def test_a_new_childs_date_of_birth_is_not_in_the_future_nor_over_25_years_back(
    world: World, days_ago: int, status: int
) -> None:
    born = world.clock.now().date() - dt.timedelta(days=days_ago)
    response = world.client.post(
        "/api/v1/children",
        json={**CHILD, "family_name": unique_name(), "date_of_birth": born.isoformat()},
        headers=world.headers(Role.LA_DATA_MANAGER, LA_A),
    )
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["error"]["code"] == "date_out_of_range"
        assert born.isoformat() not in response.text  # a date of birth is never echoed


def _claim(world: World, child_id: str, headers: dict[str, str], **body: Any) -> Any:
    return world.client.post(
        f"/api/v1/children/{child_id}/involvements", json=body, headers=headers
    )


def test_an_involvement_starts_within_the_window_after_birth_and_not_in_the_future(
    world: World,
) -> None:
    today = world.clock.now().date()
    baby = world.child(date_of_birth=(today - dt.timedelta(days=30)).isoformat())
    older = world.child()
    practitioner = world.login(world.new_account(Role.HEALTH_PRACTITIONER))
    window = world.ctx.settings.involvement_backdate_days

    def started(child_id: str, days_ago: int) -> tuple[int, str | None]:
        on = (today - dt.timedelta(days=days_ago)).isoformat()
        response = _claim(world, child_id, practitioner, started_on=on)
        return response.status_code, response.json().get("error", {}).get("code")

    assert started(older.id, -1) == (422, "date_out_of_range")  # tomorrow
    assert started(older.id, window + 1) == (422, "date_out_of_range")  # decades ago, say
    assert started(baby.id, 31) == (422, "date_out_of_range")  # before the child was born
    assert started(older.id, window)[0] == 201
    assert started(baby.id, 30)[0] == 201
    assert started(older.id, 0)[0] == 201
    # A CAF assessment neither before birth nor in the future.
    future = (today + dt.timedelta(days=3)).isoformat()
    assert _claim(world, baby.id, practitioner, caf_assessment_on=future).status_code == 422
    assert _claim(world, older.id, practitioner, started_on=MIDNIGHT_2016).status_code == 422


def test_an_involvement_does_not_end_before_it_started(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    headers = world.login(account)
    child = world.child()
    involvement = world.involve(child, OrganisationKind.GP_PRACTICE, practitioner=account)
    today = world.clock.now().date()

    def end(on: dt.date) -> int:
        return world.client.post(
            f"/api/v1/involvements/{involvement}/end",
            json={"ended_on": on.isoformat()},
            headers=headers,
        ).status_code

    assert end(today - dt.timedelta(days=101)) == 422  # it started 100 days ago
    assert end(today + dt.timedelta(days=1)) == 422
    assert end(today - dt.timedelta(days=100)) == 200


# A body that is not JSON of the declared shape, in every way a client gets it wrong.
MALFORMED = {
    "broken": (b"{not json", "application/json"),
    "not_utf8": (b'{"family_name": "\xff\xfe"}', "application/json"),
    "text": (b'{"family_name": "A"}', "text/plain"),
    "form": (b"family_name=A", "application/x-www-form-urlencoded"),
    "array": (b"[1, 2]", "application/json"),
    "number": (b"42", "application/json"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_every_body_that_is_not_json_of_the_declared_shape_is_one_422(
    world: World, kind: str
) -> None:
    content, content_type = MALFORMED[kind]
    headers = {**world.headers(Role.LA_DATA_MANAGER, LA_A), "content-type": content_type}
    answers: dict[tuple[int, str], int] = {}
    for path, route in route_table():
        if route.body_field is None or not route.body_field.field_info.is_required():
            continue
        url = path.replace("{child_id}", "0000000000000").replace("{carer_id}", "1")
        url = url.replace("{", "").replace("}", "").replace("_id", "1")
        method = sorted(route.methods or {"POST"})[0]
        response = world.client.request(method, url, content=content, headers=headers)
        answer = (response.status_code, response.json()["error"]["code"])
        answers[answer] = answers.get(answer, 0) + 1
    # The data manager's role lacks some routes' permission: refused before the body is read.
    answers.pop((403, "permission_denied"), None)
    assert set(answers) == {(422, "invalid_request")}
    assert answers[(422, "invalid_request")] >= 15


def test_head_is_answered_wherever_get_is(world: World) -> None:
    headers = world.headers(Role.LA_DATA_MANAGER, LA_A)
    get = world.client.get("/api/v1/auth/me", headers=headers)
    head = world.client.head("/api/v1/auth/me", headers=headers)
    assert (get.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert world.client.head("/healthz").status_code == 200
    # No HEAD where there is no GET.
    assert world.client.head("/api/v1/children", headers=headers).status_code == 405
    assert world.client.head("/api/v1/children/search", headers=headers).status_code == 405


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/children/0000000000000", "GET, HEAD, PATCH"),
        ("PUT", "/api/v1/children", "POST"),
        ("DELETE", "/api/v1/children/search", "POST"),
        ("PATCH", "/api/v1/children/search", "POST"),
        ("DELETE", "/api/v1/exports", "GET, HEAD, POST"),
    ],
)
def test_405_lists_every_method_the_path_serves(
    world: World, method: str, path: str, allow: str
) -> None:
    response = world.client.request(method, path, headers=world.headers(Role.LA_DATA_MANAGER))
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_access_reason_is_bounded(world: World) -> None:
    child = world.child()
    headers = world.headers(Role.LA_DATA_MANAGER, LA_A)

    def view(reason: str) -> tuple[int, str | None]:
        response = world.client.get(
            f"/api/v1/children/{child.id}", headers={**headers, "X-Access-Reason": reason}
        )
        return response.status_code, response.json().get("error", {}).get("code")

    assert view("safeguarding; " + "x" * 600) == (400, "access_reason_too_long")
    assert view("safeguarding; " + "x" * 400)[0] == 200
    assert view("Safeguarding") == (400, "invalid_access_reason")
