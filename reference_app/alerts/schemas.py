"""Alert bodies: what the management team sees (references, never a child's personal data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reference_app.kit.text import MultiLine


class AlertSubject(BaseModel):
    id: int
    username: str | None
    role: str | None
    status: str | None


class AlertOut(BaseModel):
    id: int
    kind: str
    severity: str
    status: str
    created_at: datetime
    updated_at: datetime | None
    subject_user_id: int
    subject: AlertSubject
    local_authority_id: int
    child_id: str | None
    audit_event_id: int | None
    summary: str
    details: dict[str, Any]
    handled_by: int | None
    # The employing LA's data manager who asked to reinstate the subject, awaiting a second.
    reinstatement_requested_by: int | None = None


class AlertStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: MultiLine | None = Field(default=None, max_length=500)
