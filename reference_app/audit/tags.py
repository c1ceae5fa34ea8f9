"""Typed audit event tags: tests assert the exact tag an action produces."""

from __future__ import annotations

from enum import StrEnum


class EventTag(StrEnum):
    ACCESS_DENIED = "access:denied"
    ACCESS_REFUSED = "access:refused"
    ALERT_ACKNOWLEDGED = "alert:acknowledged"
    ALERT_CLOSED = "alert:closed"
    ALERT_INVESTIGATING = "alert:investigating"
    ALERT_RAISED = "alert:raised"
    AUDIT_EVENTS_READ = "audit:events:read"
    AUTH_ENROLLED = "auth:enrolled"
    AUTH_ENROL_FAILED = "auth:enrol:failed"
    AUTH_LOGIN_FAILED = "auth:login:failed"
    AUTH_LOGIN_SUCCEEDED = "auth:login:succeeded"
    AUTH_LOGOUT = "auth:logout"
    AUTH_PASSWORD_CHANGED = "auth:password:changed"  # noqa: S105 (an event name)
    AUTH_TOTP_RESET = "auth:totp:reset"
    BACKUP_CREATED = "backup:created"
    BACKUP_RESTORED = "backup:restored"
    CARER_ADDED = "carer:added"
    CARER_CORRECTED = "carer:corrected"
    CHILD_CORRECTED = "child:corrected"
    CHILD_CREATED = "child:created"
    CHILD_DECEASED_RECORDED = "child:deceased:recorded"
    CHILD_RECORD_OVERRIDE = "child:record:override"
    CHILD_RECORD_VIEWED = "child:record:viewed"
    CHILD_SEARCH_PERFORMED = "child:search:performed"
    CHILD_SHIELDED = "child:shielded"
    CHILD_UNSHIELD_APPROVED = "child:unshield:approved"
    CHILD_UNSHIELD_REQUESTED = "child:unshield:requested"
    CHILD_UNSHIELD_WITHDRAWN = "child:unshield:withdrawn"
    CHILD_UNSHIELDED = "child:unshielded"
    EXPORT_APPROVED = "export:approved"
    EXPORT_DOWNLOADED = "export:downloaded"
    EXPORT_LINK_ISSUED = "export:link:issued"
    EXPORT_REFUSED = "export:refused"
    EXPORT_REQUESTED = "export:requested"
    EXPORT_VIOLATION = "export:violation"
    INVOLVEMENT_CONFIRMED = "involvement:confirmed"
    INVOLVEMENT_CONSENT_WITHDRAWN = "involvement:consent:withdrawn"
    INVOLVEMENT_ENDED = "involvement:ended"
    INVOLVEMENT_REGISTERED = "involvement:registered"
    INVOLVEMENT_REJECTED = "involvement:rejected"
    INVOLVEMENT_UPDATED = "involvement:updated"
    LIMIT_EXCEEDED = "limit:exceeded"
    REQUEST_APPROVED = "request:approved"
    REQUEST_RAISED = "request:raised"
    REQUEST_REJECTED = "request:rejected"
    RETENTION_ARCHIVED = "retention:archived"
    RETENTION_PURGED = "retention:purged"
    SUBJECT_ACCESS_PRODUCED = "subject_access:produced"
    USER_CREATED = "user:created"
    USER_REINSTATED = "user:reinstated"
    USER_REINSTATEMENT_REQUESTED = "user:reinstatement:requested"
    USER_ROLE_CHANGED = "user:role:changed"
    USER_ROLE_CONFIRMED = "user:role:confirmed"
    USER_SUSPENDED = "user:suspended"


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    FAILED = "failed"


class AccessRelationship(StrEnum):
    """Why a view was allowed: recorded with every record view."""

    DATA_MANAGER = "data_manager"
    INVOLVED = "involved"
    # Under an involvement confirmed too recently to vouch for the view (the detector still
    # scores it as it would a view without one).
    INVOLVED_RECENT = "involved_recent"
    OVERRIDE = "override"
    SELF_CLAIMED = "self_claimed"
