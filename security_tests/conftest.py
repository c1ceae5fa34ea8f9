"""Load the harness's pytest plugin when pytest is pointed at this folder."""

from security_tests.plugin import (
    pytest_addoption,
    pytest_configure,
    pytest_generate_tests,
    pytest_sessionfinish,
    security_target,
)

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_sessionfinish",
    "security_target",
]
