"""Locust users: the practitioners of the crowd, and the adversaries hidden in it."""

import json
from typing import Any


def body(response: Any) -> Any:
    """The response's JSON body (parsed from bytes: no charset sniffing), or None."""
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


def answered(response: Any) -> bool:
    """Whether the server answered without error (a failed connection has status 0)."""
    return 200 <= int(response.status_code or 0) < 400


def error_code(response: Any) -> str:
    """The registry's machine code from an error envelope, or "" when the body is not one."""
    try:
        return str(body(response)["error"]["code"])
    except (KeyError, TypeError):
        return ""
