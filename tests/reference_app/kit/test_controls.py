"""Every control switch: refused outside development; the request-size and depth limits shown
working and, switched off, letting the abuse through; the security headers gone when off."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from reference_app.access.permissions import Role
from reference_app.config import Environment, Settings
from reference_app.kit.controls import Control
from reference_app.kit.middleware import SECURITY_HEADERS, DepthGauge, _TooDeep
from tests.fixtures.world import LA_A, World, strict_world


@pytest.mark.parametrize("control", list(Control))
@pytest.mark.parametrize("environment", [Environment.PRODUCTION, Environment.TEST])
def test_no_control_can_be_switched_off_outside_development(
    control: Control, environment: Environment
) -> None:
    with pytest.raises(ValidationError, match="only in a development build"):
        Settings(environment=environment, disabled_controls=frozenset({control}))


def test_the_switches_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "development")
    monkeypatch.setenv("CONTACTPOINT_DISABLED_CONTROLS", '["rate_limits", "export_two_person"]')
    assert Settings().disabled_controls == {Control.RATE_LIMITS, Control.EXPORT_TWO_PERSON}
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "production")
    with pytest.raises(ValidationError):
        Settings()


def nested(depth: int) -> str:
    return '{"family_name": "Smith", "given_name": ' + "[" * depth + "]" * depth + "}"


def search(world: World, body: str | bytes) -> tuple[int, str]:
    response = world.client.post(
        "/api/v1/children/search",
        content=body,
        headers={
            **world.headers(Role.HEALTH_PRACTITIONER, LA_A),
            "Content-Type": "application/json",
        },
    )
    return response.status_code, response.json()["error"]["code"]


def test_deeply_nested_json_is_refused_before_parsing(world: World) -> None:
    assert search(world, nested(200)) == (400, "json_too_deep")
    # Brackets inside strings are text, not nesting.
    assert search(world, json.dumps({"family_name": "[" * 100, "given_name": "A"}))[0] == 422


def test_an_oversized_body_is_refused(world: World) -> None:
    big = json.dumps({"family_name": "x" * 70000, "given_name": "A"})
    assert search(world, big) == (413, "payload_too_large")


def test_with_request_limits_off_the_deep_and_the_large_bodies_get_in(world: World) -> None:
    with strict_world(world, off=[Control.REQUEST_LIMITS], limits_scale=100) as w:
        w.accounts = dict(world.accounts)
        headers = w.login(w.new_account(Role.HEALTH_PRACTITIONER))
        for body in (nested(200), json.dumps({"family_name": "x" * 70000, "given_name": "A"})):
            response = w.client.post(
                "/api/v1/children/search",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            # Parsed and judged by the model: the limit did not stop it.
            assert response.status_code == 422


@pytest.mark.parametrize(
    ("chunks", "too_deep"),
    [
        ([b"[" * 16 + b"]" * 16], False),
        ([b"[" * 17], True),
        ([b"[" * 10, b"[" * 7], True),
        ([b'"' + b"[" * 40 + b'"'], False),
        ([b'"\\"' + b"[" * 40 + b'"'], False),
        ([b"[]" * 40], False),
    ],
)
def test_the_depth_gauge_follows_nesting_across_chunks(chunks: list[bytes], too_deep: bool) -> None:
    gauge = DepthGauge(16)

    def feed_all() -> None:
        for chunk in chunks:
            gauge.feed(chunk)

    if too_deep:
        with pytest.raises(_TooDeep):
            feed_all()
    else:
        feed_all()


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/nowhere", "/api/v1/auth/me"])
def test_with_security_headers_off_none_is_sent(world: World, path: str) -> None:
    """On: test_http.test_security_headers_on_every_answer."""
    with strict_world(world, off=[Control.SECURITY_HEADERS]) as w:
        response = w.client.get(path)
    assert response.status_code in (200, 401, 404)
    sent = {name.lower() for name in response.headers}
    assert sent.isdisjoint(name.decode() for name, _ in SECURITY_HEADERS)
    assert "x-request-id" in sent
