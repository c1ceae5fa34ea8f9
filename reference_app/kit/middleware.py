"""Pure ASGI middleware: request ids, security headers, and a cap on request body size."""

from __future__ import annotations

import json
import logging
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference_app.kit.errors import error_body

log = logging.getLogger("contactpoint")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


_CSP = b"content-security-policy"
_STRICT_CSP = b"default-src 'none';"


def _with_security_headers(app_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The app's headers plus the security headers. A route may send its own content security
    policy if it starts from ``default-src 'none'`` (the printable subject access page allows
    its one stylesheet by hash); any other is replaced by the default."""
    own_csp = any(k.lower() == _CSP and v.startswith(_STRICT_CSP) for k, v in app_headers)
    headers = [
        (k, v)
        for k, v in app_headers
        if k.lower() != b"cache-control" and (k.lower() != _CSP or v.startswith(_STRICT_CSP))
    ]
    headers.extend((k, v) for k, v in SECURITY_HEADERS if not (own_csp and k == _CSP))
    return headers


class _BodyTooLarge(Exception):
    pass


class SecurityMiddleware:
    """Stamp every answer with a request id and security headers; refuse oversized bodies."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = _with_security_headers(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(send_with_headers, request_id)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send_with_headers, request_id)
        except Exception:
            # Log the trace here; the client gets the envelope and the request id, nothing more.
            log.exception("unhandled error (request %s)", request_id)
            if not started:
                await self._error(
                    send_with_headers,
                    500,
                    "internal_error",
                    "Something went wrong on our side.",
                    request_id,
                )

    async def _too_large(self, send: Send, request_id: str) -> None:
        await self._error(
            send, 413, "payload_too_large", "The request body is too large.", request_id
        )

    async def _error(
        self, send: Send, status: int, code: str, message: str, request_id: str
    ) -> None:
        body = json.dumps(error_body(code, message, request_id)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
