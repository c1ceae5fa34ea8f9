"""Request and response bodies for exports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reference_app.exports.models import ScopeKind
from reference_app.kit.identifiers import RowId
from reference_app.kit.text import MultiLine, OneLine

MAX_AGE = 18


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportScope(Strict):
    """Which children of the caller's LA: all, or those an organisation of the LA works with,
    optionally within an age range (in whole years, on the day). Shielded, archived and deceased
    children are never exported."""

    kind: ScopeKind
    organisation_id: RowId | None = None
    min_age: int | None = Field(default=None, ge=0, le=MAX_AGE)
    max_age: int | None = Field(default=None, ge=0, le=MAX_AGE)

    @model_validator(mode="after")
    def _consistent(self) -> ExportScope:
        if (self.kind is ScopeKind.ORGANISATION) != (self.organisation_id is not None):
            raise ValueError("organisation_id is given with kind 'organisation', and only then")
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        return self


class ExportCreate(Strict):
    scope: ExportScope
    justification: MultiLine = Field(min_length=10, max_length=2000)
    recipient_name: OneLine = Field(min_length=1, max_length=120)
    recipient_public_key: MultiLine = Field(min_length=1, max_length=2000)


class ExportRefuse(Strict):
    note: MultiLine | None = Field(default=None, max_length=500)


class ExportOut(BaseModel):
    id: int
    status: str
    scope: ExportScope
    justification: str
    recipient_name: str
    recipient_fingerprint: str
    row_count: int
    requested_by: int
    requested_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    expires_at: datetime
    downloaded_at: datetime | None
    downloaded_rows: int | None
    download_sha256: str | None


class ExportLink(BaseModel):
    token: str
    url: str
    expires_at: datetime
