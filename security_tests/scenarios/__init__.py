"""The scenarios, one module per group; importing this package registers them all."""

from security_tests.scenarios import (
    audit,
    auth,
    authz,
    exfiltration,
    harvesting,
    injection,
    insider,
    shielding,
    static,
    transport,
)

__all__ = [
    "audit",
    "auth",
    "authz",
    "exfiltration",
    "harvesting",
    "injection",
    "insider",
    "shielding",
    "static",
    "transport",
]
