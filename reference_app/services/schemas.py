"""Request and response bodies for involvements."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict

from reference_app.kit.schemas import IsoDate
from reference_app.services.models import Involvement


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvolvementCreate(Strict):
    # From the child's birth and at most ``involvement_backdate_days`` back; never in the future.
    started_on: IsoDate | None = None
    lead_professional: bool = False
    caf_assessment_on: IsoDate | None = None
    consent_recorded: bool = False


class InvolvementChange(Strict):
    lead_professional: bool | None = None
    caf_assessment_on: IsoDate | None = None


class InvolvementEnd(Strict):
    # Not before the involvement started, never in the future.
    ended_on: IsoDate | None = None


class InvolvementOut(BaseModel):
    id: int
    child_id: str
    organisation_id: int
    started_on: dt.date
    ended_on: dt.date | None
    lead_professional: bool
    caf_assessment_on: dt.date | None
    sensitive: bool
    consent_withdrawn_at: dt.datetime | None = None
    # A claim counts towards need-to-know only once the child's LA confirms it.
    confirmed: bool
    confirmed_at: dt.datetime | None

    @classmethod
    def of(cls, inv: Involvement) -> InvolvementOut:
        return cls(
            id=inv.id,
            child_id=inv.child_id,
            organisation_id=inv.organisation_id,
            started_on=inv.started_on,
            ended_on=inv.ended_on,
            lead_professional=inv.is_lead_professional,
            caf_assessment_on=inv.caf_assessment_on,
            sensitive=inv.sensitive,
            consent_withdrawn_at=inv.consent_withdrawn_at,
            confirmed=inv.confirmed_at is not None,
            confirmed_at=inv.confirmed_at,
        )
