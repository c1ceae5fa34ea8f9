"""The one permission vocabulary, and what each role holds.

The app's route guards, the role-matrix tests and the security scenarios all import from here.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    ALERT_MANAGE = "alert:manage"
    ALERT_READ = "alert:read"
    AUDIT_READ = "audit:read"
    CHILD_CREATE = "child:create"
    CHILD_RECORD_CORRECT = "child:record:correct"
    CHILD_RECORD_OVERRIDE = "child:record:override"
    CHILD_RECORD_READ = "child:record:read"
    CHILD_SEARCH = "child:search"
    CHILD_SHIELD = "child:shield"
    EXPORT_APPROVE = "export:approve"
    EXPORT_REQUEST = "export:request"
    INVOLVEMENT_CONFIRM = "involvement:confirm"
    INVOLVEMENT_CONSENT_WITHDRAW = "involvement:consent:withdraw"
    INVOLVEMENT_WRITE = "involvement:write"
    REQUEST_DECIDE = "request:decide"
    REQUEST_RAISE = "request:raise"
    SUBJECT_ACCESS_PRODUCE = "subject_access:produce"
    USER_MANAGE = "user:manage"
    USER_ROLE_CONFIRM = "user:role:confirm"


class Role(StrEnum):
    EDUCATION_PRACTITIONER = "education_practitioner"
    HEALTH_PRACTITIONER = "health_practitioner"
    LA_DATA_MANAGER = "la_data_manager"
    NATIONAL_AUDITOR = "national_auditor"
    POLICE_PRACTITIONER = "police_practitioner"
    SOCIAL_CARE_PRACTITIONER = "social_care_practitioner"
    SYSTEM_ADMINISTRATOR = "system_administrator"
    VOLUNTARY_PRACTITIONER = "voluntary_practitioner"
    YOUTH_OFFENDING_PRACTITIONER = "youth_offending_practitioner"


PRACTITIONER_ROLES = frozenset(
    {
        Role.EDUCATION_PRACTITIONER,
        Role.HEALTH_PRACTITIONER,
        Role.POLICE_PRACTITIONER,
        Role.SOCIAL_CARE_PRACTITIONER,
        Role.VOLUNTARY_PRACTITIONER,
        Role.YOUTH_OFFENDING_PRACTITIONER,
    }
)

_PRACTITIONER = frozenset(
    {
        Permission.CHILD_SEARCH,
        Permission.CHILD_RECORD_READ,
        Permission.INVOLVEMENT_WRITE,
        # A young person withdraws consent through the service they gave it to.
        Permission.INVOLVEMENT_CONSENT_WITHDRAW,
        # A practitioner may pass on a family's request to correct or shield; the LA decides.
        Permission.REQUEST_RAISE,
    }
)
# The override is held by few roles: those who act on immediate risk to a child.
_OVERRIDE = _PRACTITIONER | {Permission.CHILD_RECORD_OVERRIDE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.EDUCATION_PRACTITIONER: _PRACTITIONER,
    Role.HEALTH_PRACTITIONER: _PRACTITIONER,
    Role.LA_DATA_MANAGER: frozenset(
        {
            Permission.ALERT_MANAGE,
            Permission.ALERT_READ,
            Permission.AUDIT_READ,
            Permission.CHILD_CREATE,
            Permission.CHILD_RECORD_CORRECT,
            Permission.CHILD_RECORD_READ,
            Permission.CHILD_SEARCH,
            Permission.CHILD_SHIELD,
            Permission.EXPORT_APPROVE,
            Permission.EXPORT_REQUEST,
            Permission.INVOLVEMENT_CONFIRM,
            # ... or through the child's LA, which manages the record.
            Permission.INVOLVEMENT_CONSENT_WITHDRAW,
            Permission.REQUEST_DECIDE,
            Permission.REQUEST_RAISE,
            Permission.SUBJECT_ACCESS_PRODUCE,
            Permission.USER_ROLE_CONFIRM,
        }
    ),
    Role.NATIONAL_AUDITOR: frozenset({Permission.ALERT_READ, Permission.AUDIT_READ}),
    Role.POLICE_PRACTITIONER: _OVERRIDE,
    Role.SOCIAL_CARE_PRACTITIONER: _OVERRIDE,
    # Administrators of the IT system run accounts, and cannot read child data.
    Role.SYSTEM_ADMINISTRATOR: frozenset({Permission.USER_MANAGE}),
    Role.VOLUNTARY_PRACTITIONER: _PRACTITIONER,
    Role.YOUTH_OFFENDING_PRACTITIONER: _PRACTITIONER,
}


# Roles that read child data (practitioners, override holders, data managers): granting one
# takes a data manager of the account's local authority.
CHILD_DATA_ROLES = frozenset(
    role
    for role, held in ROLE_PERMISSIONS.items()
    if held
    & {Permission.CHILD_RECORD_READ, Permission.CHILD_SEARCH, Permission.CHILD_RECORD_OVERRIDE}
)


class AccessReason(StrEnum):
    """Reason codes a user states before viewing a child's record."""

    CAF_ASSESSMENT = "caf_assessment"
    CONTACT_PRACTITIONER = "contact_practitioner"
    EMERGENCY_OVERRIDE = "emergency_override"
    SAFEGUARDING = "safeguarding"
    SERVICE_DELIVERY = "service_delivery"
