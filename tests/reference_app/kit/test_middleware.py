"""The request's source (forwarded headers believed only from trusted proxies), the security
headers added in issue 13 (permissions policy, HSTS, no server banner), and the OpenAPI document
behind a login."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.app import create_app
from reference_app.audit.models import AuditEvent
from reference_app.config import Environment
from reference_app.kit.controls import Control
from reference_app.kit.middleware import forwarded_source, proxy_trust
from tests.fixtures.database import make_context
from tests.fixtures.world import LA_A, World

PROXIES = proxy_trust([ip_network("10.0.0.0/8"), ip_network("fd00::/8")])


def scope(peer: str, forwarded: str | None = None, proto: str | None = None) -> dict[str, object]:
    headers = []
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {"type": "http", "client": (peer, 4000), "headers": headers}


def test_an_untrusted_peers_forwarded_header_is_ignored() -> None:
    assert forwarded_source(scope("198.51.100.9", "203.0.113.77"), PROXIES) == (
        "198.51.100.9",
        None,
    )


def test_a_trusted_proxy_gives_the_nearest_untrusted_address() -> None:
    # The client wrote 203.0.113.77 itself; the proxy appended the address it saw.
    forged = scope("10.0.0.5", "203.0.113.77, 198.51.100.9")
    assert forwarded_source(forged, PROXIES) == ("198.51.100.9", None)
    chained = scope("10.0.0.5", "198.51.100.9, 10.1.2.3")
    assert forwarded_source(chained, PROXIES) == ("198.51.100.9", None)


def test_a_trusted_proxy_that_sends_no_header_is_the_source() -> None:
    assert forwarded_source(scope("10.0.0.5"), PROXIES) == ("10.0.0.5", None)


def test_a_hop_that_is_not_an_address_stops_the_walk() -> None:
    assert forwarded_source(scope("10.0.0.5", "203.0.113.77, nonsense"), PROXIES)[0] == ("10.0.0.5")


def test_the_scheme_is_believed_only_from_a_trusted_proxy() -> None:
    assert forwarded_source(scope("10.0.0.5", "198.51.100.9", "https"), PROXIES)[1] == "https"
    assert forwarded_source(scope("198.51.100.9", None, "https"), PROXIES)[1] is None
    assert forwarded_source(scope("10.0.0.5", None, "gopher"), PROXIES)[1] is None


def test_ipv6_proxies_and_clients() -> None:
    assert forwarded_source(scope("fd00::1", "2001:db8::7"), PROXIES) == ("2001:db8::7", None)


@contextmanager
def served(
    world: World, peer: str, *, off: frozenset[Control] = frozenset(), **overrides: object
) -> Iterator[TestClient]:
    settings: dict[str, object] = {"trusted_proxies": (ip_network("10.0.0.0/8"),), **overrides}
    if off or overrides.get("openapi_public"):
        settings |= {"environment": Environment.DEVELOPMENT, "disabled_controls": off}
    ctx = make_context(world.database, world.ctx.keyring, **settings)
    try:
        with TestClient(create_app(ctx), client=(peer, 4000)) as client:
            yield client
    finally:
        ctx.engine.dispose()


def audited_source(world: World, client: TestClient, forwarded: str) -> str | None:
    response = client.get(
        "/api/v1/audit/events",
        params={"limit": 1},
        headers={**world.headers(Role.LA_DATA_MANAGER, LA_A), "X-Forwarded-For": forwarded},
    )
    assert response.status_code == 200, response.text
    with world.ctx.sessions() as db:
        return db.scalar(
            select(AuditEvent.source).where(
                AuditEvent.request_id == response.headers["x-request-id"]
            )
        )


def test_the_trail_records_the_peer_not_a_forged_header(world: World) -> None:
    with served(world, "198.51.100.9") as client:
        assert audited_source(world, client, "203.0.113.77") == "198.51.100.9"


def test_the_trail_records_the_client_a_trusted_proxy_names(world: World) -> None:
    with served(world, "10.0.0.5") as client:
        assert audited_source(world, client, "203.0.113.77, 198.51.100.20") == "198.51.100.20"


def test_switched_off_any_peers_header_is_believed(world: World) -> None:
    with served(world, "198.51.100.9", off=frozenset({Control.TRUSTED_PROXIES})) as client:
        assert audited_source(world, client, "203.0.113.77") == "203.0.113.77"


def test_no_proxy_is_trusted_by_default() -> None:
    from reference_app.config import Settings

    assert Settings(environment=Environment.TEST).trusted_proxies == ()


def test_permissions_policy_and_no_banner(world: World) -> None:
    response = world.client.get("/healthz")
    assert "camera=()" in response.headers["permissions-policy"]
    assert "server" not in response.headers
    assert "strict-transport-security" not in response.headers  # plain http


def test_hsts_over_https_or_always(world: World) -> None:
    with served(world, "10.0.0.5") as client:
        over_tls = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "max-age=31536000" in over_tls.headers["strict-transport-security"]
    with served(world, "198.51.100.9") as client:
        # A client's own X-Forwarded-Proto is not a proxy's word.
        plain = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in plain.headers
    with served(world, "198.51.100.9", hsts_always=True) as client:
        assert "strict-transport-security" in client.get("/healthz").headers


def test_openapi_needs_a_login(world: World) -> None:
    anonymous = world.client.get("/api/v1/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    signed_in = world.client.get(
        "/api/v1/openapi.json", headers=world.headers(Role.HEALTH_PRACTITIONER, LA_A)
    )
    assert signed_in.status_code == 200
    assert "/api/v1/audit/events" in signed_in.json()["paths"]
    for page in ("/docs", "/redoc", "/api/v1/docs"):
        assert world.client.get(page).status_code == 404


@pytest.mark.parametrize("environment", [Environment.PRODUCTION, Environment.TEST])
def test_openapi_public_is_ignored_outside_development(
    world: World, environment: Environment
) -> None:
    ctx = make_context(
        world.database, world.ctx.keyring, environment=environment, openapi_public=True
    )
    try:
        with TestClient(create_app(ctx)) as client:
            assert client.get("/api/v1/openapi.json").status_code == 401
    finally:
        ctx.engine.dispose()


def test_a_development_build_may_serve_openapi_openly(world: World) -> None:
    with served(world, "198.51.100.9", openapi_public=True) as client:
        assert client.get("/api/v1/openapi.json").status_code == 200


def test_switched_off_openapi_is_public(world: World) -> None:
    with served(world, "198.51.100.9", off=frozenset({Control.SECURITY_HEADERS})) as client:
        response = client.get("/api/v1/openapi.json")
        assert response.status_code == 200
        assert "permissions-policy" not in response.headers
