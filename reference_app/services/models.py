"""Organisations that work with children, and each involvement with a child."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime
from reference_app.kit.sealing import SealedRef


class OrganisationKind(StrEnum):
    CHILDRENS_SOCIAL_CARE = "childrens_social_care"
    EARLY_YEARS_SETTING = "early_years_setting"
    GP_PRACTICE = "gp_practice"
    HEALTH_VISITING_TEAM = "health_visiting_team"
    LA_MANAGEMENT_TEAM = "la_management_team"
    MENTAL_HEALTH_SERVICE = "mental_health_service"
    NATIONAL_AUDIT = "national_audit"
    POLICE = "police"
    REGISTRY_OPERATIONS = "registry_operations"
    SCHOOL = "school"
    SEXUAL_HEALTH_SERVICE = "sexual_health_service"
    SUBSTANCE_MISUSE_SERVICE = "substance_misuse_service"
    VOLUNTARY_ORGANISATION = "voluntary_organisation"
    YOUTH_OFFENDING_TEAM = "youth_offending_team"


SENSITIVE_KINDS = frozenset(
    {
        OrganisationKind.MENTAL_HEALTH_SERVICE,
        OrganisationKind.SEXUAL_HEALTH_SERVICE,
        OrganisationKind.SUBSTANCE_MISUSE_SERVICE,
    }
)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    local_authority_id: Mapped[int] = mapped_column(ForeignKey("local_authorities.id"), index=True)
    # An organisation's switchboard is not personal data; it is how practitioners make contact.
    phone: Mapped[str | None] = mapped_column(String(30))

    @property
    def sensitive(self) -> bool:
        return self.kind in SENSITIVE_KINDS


class Involvement(Base):
    """A service working with a child, owned by the practitioner who registered it.

    A practitioner's registration is a claim: it widens nobody's view until a data manager of
    the child's LA confirms it (``confirmed_at``). The population feed's involvements arrive
    confirmed.
    """

    __tablename__ = "involvements"
    __table_args__ = (
        Index("ix_involvements_child_org", "child_id", "organisation_id"),
        # An organisation's export scope starts from its involvements: the child reference is
        # sealed, so it cannot start from the children and look each one up.
        Index("ix_involvements_organisation", "organisation_id"),
        Index("ix_involvements_practitioner", "practitioner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Sealed: a copy of the database cannot tell which child a service works with.
    child_id: Mapped[str] = mapped_column(SealedRef("involvements.child_id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    is_lead_professional: Mapped[bool] = mapped_column(Boolean, default=False)
    caf_assessment_on: Mapped[date | None] = mapped_column(Date)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    # The young person withdrew consent (through the service or the child's LA): from then on
    # no other service sees a sensitive involvement.
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None with a ``confirmed_at``: confirmed by a trusted feed, not by a person.
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
