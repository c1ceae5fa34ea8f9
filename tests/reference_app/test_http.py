"""The HTTP contract: one error envelope, no stack traces, security headers, public routes."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from reference_app.access.permissions import Role
from reference_app.app import create_app
from tests.fixtures.world import World

PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/enrol"),
    ("POST", "/api/v1/auth/login"),
}


def _guarded(route: APIRoute) -> bool:
    def walk(dependant) -> bool:  # type: ignore[no-untyped-def]
        for sub in dependant.dependencies:
            if getattr(sub.call, "__name__", "") in ("authenticate", "guard") or walk(sub):
                return True
        return False

    return walk(route.dependant)


def test_every_route_is_guarded_except_the_listed_public_ones(world: World) -> None:
    from reference_app.api import route_table

    public: set[tuple[str, str]] = set()  # the OpenAPI document needs a login (test_middleware)
    table = route_table()
    assert len(table) > 15
    for path, route in table:
        if not _guarded(route):
            public |= {(m, path) for m in route.methods}
    assert public == PUBLIC_ROUTES
    # and the app serves exactly these routes
    headers = world.headers(Role.HEALTH_PRACTITIONER)
    spec = world.client.get("/api/v1/openapi.json", headers=headers).json()
    assert set(spec["paths"]) == {p for p, _ in table}


def assert_envelope(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/api/v1/nowhere", {}, 404, "not_found"),
        ("DELETE", "/api/v1/children/search", {}, 405, "method_not_allowed"),
        ("POST", "/api/v1/auth/login", {"content": b"{not json"}, 422, "invalid_request"),
        (
            "POST",
            "/api/v1/auth/login",
            {
                "content": b"username=a",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"username": "a", "password": "b", "otp": "12"}},
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"username": "' OR 1=1 --", "password": "x", "otp": "123456"}},
            401,
            "invalid_credentials",
        ),
        ("POST", "/api/v1/auth/login", {"content": b"x" * 70000}, 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_a_clean_4xx_envelope(
    world: World, method: str, path: str, kwargs: dict, status: int, code: str
) -> None:
    response = world.client.request(method, path, **kwargs)
    assert_envelope(response, status, code)


def test_deeply_nested_bodies_are_refused_cleanly(world: World) -> None:
    nested = "[" * 5000 + "]" * 5000
    response = world.client.post(
        "/api/v1/children/search",
        content=nested,
        headers={**world.headers(Role.HEALTH_PRACTITIONER), "content-type": "application/json"},
    )
    assert_envelope(response, 400, "json_too_deep")


def test_validation_errors_do_not_echo_the_input(world: World) -> None:
    response = world.client.post(
        "/api/v1/children/search",
        json={"family_name": "Hollowbrook-Zed", "postcode": "!!"},
        headers=world.headers(Role.HEALTH_PRACTITIONER),
    )
    assert_envelope(response, 422, "invalid_request")
    assert "Hollowbrook" not in response.text


def test_an_unexpected_error_is_a_500_envelope_without_a_trace(world: World) -> None:
    app = create_app(world.ctx)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert_envelope(response, 500, "internal_error")
    assert "secret internals" not in response.text


def test_exhausted_database_connections_are_a_503_not_a_fault(world: World) -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app = create_app(world.ctx)

    @app.get("/busy")
    def busy() -> None:
        raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/busy")
    assert_envelope(response, 503, "service_busy")
    assert "QueuePool" not in response.text


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/nowhere", "/api/v1/openapi.json"])
def test_security_headers_on_every_answer(world: World, path: str) -> None:
    response = world.client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "camera=()" in response.headers["permissions-policy"]
    assert "server" not in response.headers


def test_no_cors_is_granted_to_other_origins(world: World) -> None:
    response = world.client.options(
        "/api/v1/auth/login",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_probes_and_openapi(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert world.client.get("/readyz").json() == {"status": "ready"}
    headers = world.headers(Role.HEALTH_PRACTITIONER)
    spec = world.client.get("/api/v1/openapi.json", headers=headers).json()
    for path in (
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/children/search",
        "/api/v1/children/{child_id}",
        "/api/v1/alerts",
        "/api/v1/audit/events",
    ):
        assert path in spec["paths"]


def test_denials_are_audited(world: World) -> None:
    from sqlalchemy import select

    from reference_app.audit.models import AuditEvent

    admin = world.accounts[(Role.SYSTEM_ADMINISTRATOR, "E10000017")]
    child = world.child()
    world.client.get(
        f"/api/v1/children/{child.id}",
        headers={**world.headers(Role.SYSTEM_ADMINISTRATOR), "X-Access-Reason": "safeguarding"},
    )
    with world.ctx.sessions() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.child_id == child.id)).one()
    assert (event.tag, event.outcome, event.actor_id) == ("access:denied", "denied", admin.id)
    assert '"code":"permission_denied"' in event.details
