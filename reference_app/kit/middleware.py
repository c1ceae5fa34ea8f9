"""Pure ASGI middleware: the request's true source, request ids, security headers, and a cap on
request body size."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.logs import bind_request_id
from observability.signals import dependency_refused
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import error_body
from reference_app.kit.gate import GateBusy
from reference_app.kit.text import hygiene

if TYPE_CHECKING:
    from reference_app.context import AppContext

log = logging.getLogger("contactpoint")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    # An API has no use for any powerful browser feature: deny them all to whatever renders it.
    (
        b"permissions-policy",
        b"accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        b"microphone=(), payment=(), usb=()",
    ),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# Headers that name the software serving the answer: an attacker's shortcut to known flaws.
_BANNERS = frozenset({b"server", b"x-powered-by"})


_CSP = b"content-security-policy"
_STRICT_CSP = b"default-src 'none';"


def _with_security_headers(
    app_headers: list[tuple[bytes, bytes]], *, hsts: bool = False
) -> list[tuple[bytes, bytes]]:
    """The app's headers plus the security headers, without a server banner. A route may send
    its own content security policy if it starts from ``default-src 'none'`` (the printable
    subject access page allows its one stylesheet by hash); any other is replaced by the
    default."""
    own_csp = any(k.lower() == _CSP and v.startswith(_STRICT_CSP) for k, v in app_headers)
    headers = [
        (k, v)
        for k, v in app_headers
        if k.lower() != b"cache-control"
        and k.lower() not in _BANNERS
        and (k.lower() != _CSP or v.startswith(_STRICT_CSP))
    ]
    headers.extend((k, v) for k, v in SECURITY_HEADERS if not (own_csp and k == _CSP))
    if hsts:
        headers.append(HSTS)
    return headers


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _header(scope: Scope, name: bytes) -> str:
    """Every value of header ``name``, joined by commas (repeated headers form one list)."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ",".join(values)


def forwarded_source(scope: Scope, trusted: Callable[[str], bool]) -> tuple[str | None, str | None]:
    """The request's true source address and scheme: the TCP peer, unless the peer is a trusted
    proxy, in which case the nearest address in X-Forwarded-For that is not itself a trusted
    proxy (walking from the right: the left part is whatever the client chose to write). The
    scheme comes from X-Forwarded-Proto only when the peer is trusted; ``None`` keeps the
    peer's."""
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    if peer is None or not trusted(peer):
        return peer, None
    hops = [h.strip() for h in _header(scope, b"x-forwarded-for").split(",") if h.strip()]
    source = peer
    while hops and trusted(source):
        hop = hops.pop()
        try:
            source = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # not an address: believe nothing further left of it
    proto = _header(scope, b"x-forwarded-proto").split(",")[-1].strip().lower()
    return source, proto if proto in ("http", "https") else None


def proxy_trust(networks: Iterable[Network]) -> Callable[[str], bool]:
    """A predicate: whether an address belongs to one of the trusted proxy ``networks``."""
    listed = tuple(networks)

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in listed)

    return trusted


def _anyone(_address: str) -> bool:
    return True


class _BodyTooLarge(Exception):
    pass


class _TooDeep(Exception):
    pass


class DepthGauge:
    """Track JSON nesting across body chunks without parsing (strings and escapes skipped).

    Bodies with no more brackets than the limit cannot nest past it, so they are only counted;
    the byte-by-byte walk starts (from the first byte) once there are more.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.brackets = 0
        self.walking = False
        self.held = bytearray()
        self.in_string = False
        self.escaped = False

    def feed(self, chunk: bytes) -> None:
        """Raise ``_TooDeep`` as soon as nesting passes the limit."""
        if self.walking:
            self._walk(chunk)
            return
        self.held += chunk
        self.brackets += chunk.count(b"[") + chunk.count(b"{")
        if self.brackets > self.limit:
            self.walking = True
            held, self.held = bytes(self.held), bytearray()
            self._walk(held)

    def _walk(self, chunk: bytes) -> None:
        for byte in chunk:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif byte == 0x5C:  # backslash
                    self.escaped = True
                elif byte == 0x22:  # quote
                    self.in_string = False
            elif byte == 0x22:
                self.in_string = True
            elif byte in (0x5B, 0x7B):  # [ {
                self.depth += 1
                if self.depth > self.limit:
                    raise _TooDeep
            elif byte in (0x5D, 0x7D):  # ] }
                self.depth = max(0, self.depth - 1)


class SecurityMiddleware:
    """Stamp every answer with a request id and security headers; refuse oversized bodies and
    JSON nested deeper than the limit (headers and limits switchable off only in a development
    build)."""

    def __init__(
        self, app: ASGIApp, *, ctx: AppContext, credential_paths: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.credential_paths = frozenset(credential_paths)
        self._admission: asyncio.Semaphore | None = None
        self._trust = proxy_trust(ctx.settings.trusted_proxies)
        self._admission_loop: asyncio.AbstractEventLoop | None = None

    def admission(self) -> asyncio.Semaphore:
        """At most as many requests in the app as the worker has database connections.

        A request takes its connection in a worker thread (authentication) and needs a thread
        again for its handler. Admitted without a bound, requests waiting for a connection held
        every thread while the requests holding the connections waited for a thread: under load
        the worker stalled until the pool's timeout. Waiting here, in the event loop, costs no
        thread and no connection.
        """
        loop = asyncio.get_running_loop()
        if self._admission is None or self._admission_loop is not loop:
            self._admission = asyncio.Semaphore(self.ctx.settings.database_pool_size)
            self._admission_loop = loop
        return self._admission

    def credential_lane(self, scope: Scope) -> AbstractAsyncContextManager[None]:
        """A lane of the password-hashing gate for the routes that verify or set a password
        (taken before admission, so waiting for one holds no connection), else nothing."""
        if scope.get("method") == "POST" and scope.get("path") in self.credential_paths:
            return self.ctx.credential_gate.slot()
        return nullcontext()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        bind_request_id(request_id)  # logs and the trace carry it
        started = False
        settings = self.ctx.settings
        # The source every limit, lockout and audit event uses. Switched off, a development build
        # believes any peer's forwarded header (what a server's default proxy handling did).
        trust = self._trust if enabled(settings, Control.TRUSTED_PROXIES) else _anyone
        source, scheme = forwarded_source(scope, trust)
        if source is not None and _client_changed(scope, source):
            scope["client"] = (source, 0)
        if scheme is not None:
            scope["scheme"] = scheme
        hygiene.set(enabled(settings, Control.TEXT_HYGIENE))
        stamped = enabled(settings, Control.SECURITY_HEADERS)
        hsts = stamped and (settings.hsts_always or scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if stamped:
                    headers = _with_security_headers(headers, hsts=hsts)
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        limited = enabled(settings, Control.REQUEST_LIMITS)
        max_bytes = settings.max_request_bytes
        declared = _content_length(scope)
        if limited and declared is not None and declared > max_bytes:
            await self._too_large(send_with_headers, request_id)
            await self._audit(scope, 413, "payload_too_large", request_id)
            return
        if limited:
            # Read the body (at most max_bytes) before the app sees it: a refusal here is ours
            # to word, not a body-parsing error downstream.
            try:
                receive = await _bounded_body(
                    receive, max_bytes, DepthGauge(settings.max_json_depth)
                )
            except _BodyTooLarge:
                await self._too_large(send_with_headers, request_id)
                await self._audit(scope, 413, "payload_too_large", request_id)
                return
            except _TooDeep:
                await self._error(
                    send_with_headers,
                    400,
                    "json_too_deep",
                    f"The request body nests deeper than {settings.max_json_depth} levels.",
                    request_id,
                )
                await self._audit(scope, 400, "json_too_deep", request_id)
                return
        try:
            async with self.credential_lane(scope), self.admission():
                await self.app(scope, receive, send_with_headers)
        except GateBusy:
            log.warning("password hashing lanes full (request %s)", request_id)
            await self._error(
                send_with_headers,
                503,
                "login_busy",
                "Too many logins at once; try again shortly.",
                request_id,
                headers=[(b"retry-after", str(self.ctx.credential_gate.retry_after()).encode())],
            )
        except PoolTimeout:
            # Every database connection is taken: the registry is overloaded, not broken. Say so
            # (503), so clients back off and load tests count it as refused rather than a fault.
            log.warning("database connections exhausted (request %s)", request_id)
            if not started:
                await self._error(
                    send_with_headers,
                    503,
                    "service_busy",
                    "The registry is busy; try again shortly.",
                    request_id,
                )
        except Exception as exc:
            if not started:
                await self._answer_fault(send_with_headers, exc, request_id)
            else:
                log.exception("unhandled error after the answer began (request %s)", request_id)

    async def _answer_fault(self, send: Send, exc: Exception, request_id: str) -> None:
        """A database that dropped the connection or cannot be reached is a dependency down
        (503; the pool then drops its older connections); anything else is a fault of ours
        (500). The client gets the envelope and the request id, nothing more; the trace is
        logged here."""
        if isinstance(exc, DBAPIError) and (
            exc.connection_invalidated or isinstance(exc, OperationalError)
        ):
            log.warning("database unavailable (request %s)", request_id)
            dependency_refused("database")
            await self._error(
                send,
                503,
                "database_unavailable",
                "The registry's database is unavailable; try again shortly.",
                request_id,
                headers=[(b"retry-after", b"1")],
            )
            return
        log.exception("unhandled error (request %s)", request_id, exc_info=exc)
        await self._error(
            send, 500, "internal_error", "Something went wrong on our side.", request_id
        )

    async def _audit(self, scope: Scope, status: int, code: str, request_id: str) -> None:
        """Put a refusal answered here, before routing, on the trail as the app's own are
        (``audit.refusals``): after the answer is sent, with no route template (none matched
        yet) and no principal (the token is read later), bounded per source like the rest."""
        from reference_app.api import API_PREFIX
        from reference_app.audit.refusals import Refusal, record_refusal
        from reference_app.audit.service import RequestInfo

        if not str(scope.get("path", "")).startswith(API_PREFIX):
            return
        client = scope.get("client")
        info = RequestInfo(request_id=request_id, source=client[0] if client else None)
        refusal = Refusal(method=str(scope.get("method", "")), route=None, status=status, code=code)
        try:
            async with self.admission():
                await run_in_threadpool(
                    record_refusal, self.ctx, refusal, principal=None, info=info
                )
        except Exception:  # the refusal stands even if the trail is unwritable; say so in logs
            log.exception("could not audit a refusal")

    async def _too_large(self, send: Send, request_id: str) -> None:
        await self._error(
            send, 413, "payload_too_large", "The request body is too large.", request_id
        )

    async def _error(
        self,
        send: Send,
        status: int,
        code: str,
        message: str,
        request_id: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps(error_body(code, message, request_id)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _bounded_body(receive: Receive, max_bytes: int, gauge: DepthGauge) -> Receive:
    """Read the whole body within the limits; return a ``receive`` that replays it."""
    messages: list[Message] = []
    received = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body = message.get("body", b"")
        received += len(body)
        if received > max_bytes:
            raise _BodyTooLarge
        gauge.feed(body)
        if not message.get("more_body", False):
            break
    replay = iter(messages)

    async def replayed() -> Message:
        try:
            return next(replay)
        except StopIteration:
            return await receive()

    return replayed


def _client_changed(scope: Scope, source: str) -> bool:
    client = scope.get("client")
    return not client or client[0] != source


def _content_length(scope: Scope) -> int | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
