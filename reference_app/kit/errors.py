"""One error type with an HTTP status and a stable machine code, and its one response shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


class AppError(Exception):
    """An expected failure, answered as ``{"error": {"code", "message", "request_id"}}``."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.error_code = code or self.code
        self.error_message = message or self.message
        self.headers = headers or {}
        # Set when the failure is already on the audit trail, so it is not recorded twice.
        self.audited = False
        # Work to do once the request's own transaction has been rolled back (record the
        # refusal, raise an alert, suspend): it must outlive the refused request.
        self.follow_ups: list[Callable[[], None]] = []
        super().__init__(self.error_message)


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthenticated"
    message = "Authentication is required."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class NotFound(AppError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    status = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class Gone(AppError):
    status = 410
    code = "gone"
    message = "This is no longer available."


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large."


class InvalidInput(AppError):
    status = 422
    code = "invalid_request"
    message = "The request is not valid."


class TooManyRequests(AppError):
    status = 429
    code = "too_many_requests"
    message = "Too many requests; try again later."

    def __init__(
        self, message: str | None = None, *, code: str | None = None, retry_after: int = 60
    ) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after))})


def error_body(code: str, message: str, request_id: str | None) -> dict[str, Any]:
    """Return the one error envelope every 4xx and 5xx answer uses."""
    return {"error": {"code": code, "message": message, "request_id": request_id}}
