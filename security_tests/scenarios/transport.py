"""Transport and headers: security headers, CORS, no personal data in URLs, TLS and HSTS, a
private API description, and a request's source that a client cannot forge."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from security_tests.context import Caller, Context, status_text
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.target import API

PERSONAL_PARAMETERS = frozenset(
    {"given_name", "family_name", "date_of_birth", "postcode", "address", "name", "dob"}
)
EVIL_ORIGIN = "https://attacker.example"  # RFC 2606 reserves .example: nobody owns it
FORGED_SOURCE = "203.0.113.77"  # RFC 5737 TEST-NET-3: no real client has it
# A second loopback address: a registry that trusts its local proxy at 127.0.0.1 has no reason
# to trust it, so the harness on the same host can be an untrusted peer.
UNTRUSTED_LOOPBACK = "127.0.0.2"
# Pages that would describe the API to anyone: interactive documentation and shadow specs.
DOC_PAGES = ("/docs", "/redoc", "/openapi.json", f"{API}/docs", f"{API}/redoc")


@scenario(
    "transport.security-headers",
    owasp=["API8:2023"],
    asvs=["3.4.3", "3.4.4", "3.4.5", "3.4.6"],
    severity=Severity.MEDIUM,
    guards=["security_headers"],
)
def security_headers(ctx: Context) -> None:
    """Answers carry nosniff, no-store, a strict CSP, no framing, a feature policy, no banner."""
    # A throwaway account: the view must not count against a shared persona's browsing score.
    me = ctx.fresh("health_practitioner")
    child = ctx.new_child()
    for response in (me.get("/auth/me"), me.view(child.child_id), ctx.http.get("/api/v1/nope")):
        h = response.headers
        where = f"{response.request.method} {response.request.url.path}"
        expect(h.get("x-content-type-options") == "nosniff", f"{where}: no nosniff")
        expect("no-store" in h.get("cache-control", ""), f"{where}: may be cached (no no-store)")
        csp = h.get("content-security-policy", "")
        expect("default-src 'none'" in csp, f"{where}: no strict content security policy")
        expect(
            "frame-ancestors 'none'" in csp or h.get("x-frame-options", "").upper() == "DENY",
            f"{where}: may be framed",
        )
        expect(
            h.get("referrer-policy") in ("no-referrer", "same-origin"), f"{where}: leaks referrer"
        )
        expect(
            "camera=()" in h.get("permissions-policy", ""),
            f"{where}: no permissions policy denying browser features",
        )
        expect("server" not in h, f"{where}: names its server software ({h.get('server')!r})")
        expect("x-powered-by" not in h, f"{where}: names its framework")


@scenario(
    "transport.cors-closed",
    owasp=["API8:2023"],
    asvs=["3.4.2"],
    severity=Severity.MEDIUM,
    gap="the registry sends no CORS headers at all; no switch opens a permissive policy",
)
def cors_closed(ctx: Context) -> None:
    """A foreign origin is never allowed to read answers with the user's credentials."""
    me = ctx.caller("health_practitioner")
    preflight = ctx.http.request(
        "OPTIONS",
        "/api/v1/children/search",
        headers={
            "Origin": EVIL_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    actual = me.get("/auth/me", headers={"Origin": EVIL_ORIGIN})
    for response in (preflight, actual):
        allowed = response.headers.get("access-control-allow-origin")
        expect(
            allowed not in ("*", EVIL_ORIGIN),
            f"{response.request.method} allows origin {allowed!r}",
        )
        expect(
            response.headers.get("access-control-allow-credentials", "").lower() != "true"
            or allowed not in ("*", EVIL_ORIGIN),
            "credentials are shared with a foreign origin",
        )


@scenario(
    "transport.no-personal-data-in-urls",
    owasp=["API8:2023", "API3:2023"],
    asvs=["14.2.1"],
    severity=Severity.MEDIUM,
    gap="a property of the API's design (search by POST body); no runtime switch changes it",
)
def no_personal_data_in_urls(ctx: Context) -> None:
    """No operation takes a name, date of birth or postcode in its path or query string."""
    spec = _openapi(ctx.caller("health_practitioner"))
    offending = []
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                if param.get("in") in ("path", "query") and param.get("name") in (
                    PERSONAL_PARAMETERS
                ):
                    offending.append(f"{method.upper()} {path} ?{param['name']}")
    expect(not offending, "personal data in URLs: " + ", ".join(offending))
    me = ctx.caller("health_practitioner")
    # Search criteria in a query string must not be served (they would land in access logs).
    response = me.get("/children/search", params={"family_name": "Quorvex", "given_name": "Ada"})
    expect(
        400 <= response.status_code < 500,
        f"a search by query string answered {response.status_code}",
    )


@scenario(
    "transport.tls-and-hsts",
    owasp=["API8:2023"],
    asvs=["12.1.1", "3.4.1"],
    severity=Severity.HIGH,
    needs=["https"],
    gap="TLS is the deployment's (reverse proxy); the reference registry serves plain http",
)
def tls_and_hsts(ctx: Context) -> None:
    """An https target refuses TLS below 1.2 and sends HSTS for at least a year."""
    parts = urlsplit(ctx.target.url)
    host, port = parts.hostname or "", parts.port or 443
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.minimum_version = context.maximum_version = old
        except ValueError:
            ctx.note(f"this client cannot even offer {old.name}; not tested")
            continue
        try:
            with (
                socket.create_connection((host, port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=host),
            ):
                accepted = True
        except (ssl.SSLError, OSError):
            accepted = False
        expect(not accepted, f"the target accepts {old.name}")
        ctx.note(f"{old.name} refused")
    response = ctx.http.get("/healthz")
    hsts = response.headers.get("strict-transport-security", "")
    age = next(
        (int(p.split("=", 1)[1]) for p in hsts.split(";") if p.strip().startswith("max-age=")), 0
    )
    expect(age >= 31_536_000, f"HSTS max-age is {age} (header {hsts!r}), want a year or more")


@scenario(
    "transport.api-inventory",
    owasp=["API9:2023"],
    asvs=["13.4.5", "13.4.2"],
    severity=Severity.LOW,
    gap="a property of the deployment's routing; no runtime switch exposes old or debug routes",
)
def api_inventory(ctx: Context) -> None:
    """Only the documented API version answers: no debug pages, old versions or shadow specs."""
    spec = _openapi(ctx.caller("health_practitioner"))
    undocumented = [
        path
        for path in spec.get("paths", {})
        if not path.startswith("/api/v1/") and path not in ("/healthz", "/readyz")
    ]
    expect(not undocumented, f"routes outside the versioned API: {undocumented}")
    for path in (
        "/docs",
        "/redoc",
        "/openapi.json",
        "/api/v0/children/search",
        "/api/v2/auth/me",
        "/debug",
        "/metrics",
        "/admin",
        "/.env",
        "/api/v1/docs",
    ):
        response = ctx.http.get(path)
        expect(
            response.status_code in (401, 404, 405),
            f"GET {path} answered {response.status_code}: an undocumented surface",
        )


def _openapi(caller: Caller) -> dict[str, Any]:
    """The target's OpenAPI document, as a logged-in practitioner reads it."""
    spec = caller.get("/openapi.json")
    expect(spec.status_code == 200, f"no OpenAPI document for a practitioner ({spec.status_code})")
    body = spec.json()
    return body if isinstance(body, dict) else {}


@scenario(
    "transport.openapi-exposure",
    owasp=["API9:2023", "API8:2023"],
    asvs=["13.4.5", "14.3.2"],
    severity=Severity.MEDIUM,
    guards=["security_headers"],
)
def openapi_exposure(ctx: Context) -> None:
    """The API description (every route, the administrative ones too) is served only after login."""
    anonymous = ctx.http.get(f"{API}/openapi.json")
    expect(
        anonymous.status_code in (401, 403, 404),
        f"GET {API}/openapi.json without a login answered {anonymous.status_code}: the whole "
        "API, administrative routes included, is described to anyone",
    )
    ctx.note(f"without a login: {status_text(anonymous)}")
    for path in DOC_PAGES:
        response = ctx.http.get(path)
        expect(
            response.status_code in (401, 403, 404, 405),
            f"GET {path} without a login answered {response.status_code}",
        )
    if anonymous.status_code == 404:
        ctx.note("no OpenAPI document at the documented address for anyone")
        return
    # The refusal is about the login, not a missing document: a practitioner reads it.
    _openapi(ctx.caller("health_practitioner"))
    ctx.note("a logged-in practitioner reads the document")


def _untrusted_client(ctx: Context) -> tuple[httpx.Client, str | None]:
    """A client the target has no reason to treat as its proxy.

    Over the network the harness is an ordinary client (a proxy in front appends its address).
    On the target's own host the harness may be the trusted local proxy, so it comes from a
    second loopback address instead.
    """
    parts = urlsplit(ctx.target.url)
    host = parts.hostname or ""
    base = ctx.target.url
    local: str | None = None
    if host == "localhost":
        base = ctx.target.url.replace("//localhost", "//127.0.0.1", 1)
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        if address.version != 4:
            raise Skip("an IPv6 loopback target has no second loopback address to come from")
        local = UNTRUSTED_LOOPBACK
    client = httpx.Client(
        base_url=base,
        timeout=ctx.target.timeout,
        transport=httpx.HTTPTransport(local_address=local, verify=ctx.target.verify_tls),
        event_hooks=ctx.http.event_hooks,
    )
    return client, local


@scenario(
    "transport.forwarded-spoofing",
    owasp=["API8:2023", "API4:2023"],
    asvs=["16.2.1", "4.1.3"],
    severity=Severity.HIGH,
    guards=["trusted_proxies"],
)
def forwarded_spoofing(ctx: Context) -> None:
    """A client's own X-Forwarded-For does not become the source the trail and the limits use."""
    manager = ctx.manager()
    client, local = _untrusted_client(ctx)
    with client:
        forged = client.get(
            f"{API}/audit/events",
            params={"limit": 1},
            headers={**manager.headers, "X-Forwarded-For": FORGED_SOURCE},
        )
    expect(
        forged.status_code == 200,
        f"the data manager cannot read the audit trail: {status_text(forged)}",
    )
    request_id = forged.headers.get("x-request-id")
    if not request_id:
        raise Skip("the target names no request id (x-request-id): its event cannot be found")
    filters = {"tag": "audit:events:read", "actor_id": manager.account.id, "limit": 100}

    def probe() -> list[dict[str, Any]] | None:
        response = manager.get("/audit/events", params=filters)
        expect(response.status_code == 200, f"cannot read the trail: {status_text(response)}")
        events = list(response.json())
        return events if any(e.get("request_id") == request_id for e in events) else None

    events = ctx.wait_for(probe, within=ctx.target.alert_within)
    expect(events is not None, "the forged request's trail event never appeared")
    assert events is not None
    event = next(e for e in events if e.get("request_id") == request_id)
    source = event.get("source")
    ctx.note(
        f"sent X-Forwarded-For: {FORGED_SOURCE} from {local or 'this host'}; "
        f"the trail says source {source}"
    )
    expect(
        source != FORGED_SOURCE,
        "the audited source is the address the client wrote in X-Forwarded-For: any client can "
        "forge the trail's source and dodge per-source limits and lockouts",
    )
    if local is not None:
        expect(
            source == UNTRUSTED_LOOPBACK,
            f"the audited source is {source!r}, not the peer's address {UNTRUSTED_LOOPBACK}",
        )
