"""Locust users: the practitioners of the crowd, and the adversaries hidden in it."""

from typing import Any


def error_code(response: Any) -> str:
    """The registry's machine code from an error envelope, or "" when the body is not one."""
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""
