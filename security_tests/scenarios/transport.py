"""Transport and headers: security headers, CORS, no personal data in URLs, TLS and HSTS."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from security_tests.context import Context
from security_tests.engine import Severity, expect, scenario

PERSONAL_PARAMETERS = frozenset(
    {"given_name", "family_name", "date_of_birth", "postcode", "address", "name", "dob"}
)
EVIL_ORIGIN = "https://attacker.example"  # RFC 2606 reserves .example: nobody owns it


@scenario(
    "transport.security-headers",
    owasp=["API8:2023"],
    asvs=["3.4.3", "3.4.4", "3.4.5", "3.4.6"],
    severity=Severity.MEDIUM,
    guards=["security_headers"],
)
def security_headers(ctx: Context) -> None:
    """Answers with personal data carry nosniff, no-store, a strict CSP and no framing."""
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
    spec = ctx.http.get("/api/v1/openapi.json")
    expect(spec.status_code == 200, f"no OpenAPI document ({spec.status_code})")
    offending = []
    for path, operations in spec.json().get("paths", {}).items():
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
    spec = ctx.http.get("/api/v1/openapi.json")
    expect(spec.status_code == 200, f"no OpenAPI document ({spec.status_code})")
    undocumented = [
        path
        for path in spec.json().get("paths", {})
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
