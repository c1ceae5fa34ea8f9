"""Export requests and the watermark rows that name each export."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime


class ExportStatus(StrEnum):
    APPROVED = "approved"
    DOWNLOADED = "downloaded"
    EXPIRED = "expired"  # shown, never stored: a request or approval past its expiry
    REFUSED = "refused"
    REQUESTED = "requested"


class ScopeKind(StrEnum):
    LOCAL_AUTHORITY = "local_authority"  # every child of the LA
    ORGANISATION = "organisation"  # children with a current involvement at one organisation


class ExportRequest(Base):
    """One request to take a scope of an LA's children out of the registry."""

    __tablename__ = "export_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    local_authority_id: Mapped[int] = mapped_column(ForeignKey("local_authorities.id"), index=True)
    status: Mapped[str] = mapped_column(String(12))
    scope_kind: Mapped[str] = mapped_column(String(20))
    scope_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    scope_min_age: Mapped[int | None] = mapped_column(Integer)
    scope_max_age: Mapped[int | None] = mapped_column(Integer)
    justification_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # The recipient may be a person: their name is encrypted like any other.
    recipient_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    recipient_public_key: Mapped[str] = mapped_column(Text)
    recipient_fingerprint: Mapped[str] = mapped_column(String(16))
    row_count: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[int] = mapped_column(ForeignKey("practitioners.id"), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A request lives this long awaiting a decision; an approval this long awaiting download.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    downloaded_rows: Mapped[int | None] = mapped_column(Integer)
    download_sha256: Mapped[str | None] = mapped_column(String(64))
    download_encrypted: Mapped[bool | None] = mapped_column(Boolean)


class ExportWatermark(Base):
    """A fictional child registered as a canary and put into one export only.

    No foreign key to the child: the mapping must outlive the child's row, so that a copy
    leaked years later still names its export after retention has purged the row.
    """

    __tablename__ = "export_watermarks"

    child_id: Mapped[str] = mapped_column(String(13), primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("export_requests.id"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
