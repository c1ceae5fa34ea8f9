"""Audit tables: events, the queue awaiting sealing, the sealed log and its signed checkpoints.

Writers only INSERT an event and a pending marker, so recording never waits on a global lock; a
single sealer gives pending events their log positions in batches and signs a checkpoint over
the Merkle tree (RFC 9162), in the manner of Certificate Transparency's merge delay.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reference_app.kit.db import Base, UTCDateTime
from reference_app.kit.sealing import SealedRef

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    tag: Mapped[str] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_role: Mapped[str | None] = mapped_column(String(40))
    actor_organisation_id: Mapped[int | None] = mapped_column(Integer)
    actor_local_authority_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(32))
    # Sealed: a copy of the database must not tell who viewed whom. No foreign key: the trail
    # outlives the record it speaks of (retention purges children). The log hashes the id itself
    # (as read), so the sealing changes no leaf.
    child_id: Mapped[str | None] = mapped_column(SealedRef("audit_events.child_id"), index=True)
    reason_code: Mapped[str | None] = mapped_column(String(40))
    relationship: Mapped[str | None] = mapped_column(String(20))
    # Canonical JSON text, hashed as stored; never clear-text personal data. A child it names
    # (a search's results) is a sealed token; events written before 0017 keep clear ids, as
    # rewriting them would break the log's proofs.
    details: Mapped[str] = mapped_column(Text, default="{}")


class AuditPending(Base):
    """Events written but not yet sealed into the log."""

    __tablename__ = "audit_pending"

    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("audit_events.id"), primary_key=True, autoincrement=False
    )


class AuditLogEntry(Base):
    """An event's position in the Merkle log."""

    __tablename__ = "audit_log_entries"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(BigId, unique=True)


class AuditCheckpoint(Base):
    """A signed tree head, with the leaf hashes of the batch it sealed (the root authenticates)."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaf_hashes: Mapped[bytes] = mapped_column(LargeBinary)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))


class AuditSearchHit(Base):
    """A child a search event returned: the trail's search results indexed by child.

    Derived from the event it names (whose details list the same children, under the log's
    proofs), so that a subject access pack finds every search that showed a child with an index
    lookup instead of scanning every search's details. Append-only, like the trail; the child's
    id is sealed, like the trail's.
    """

    __tablename__ = "audit_search_hits"

    child_id: Mapped[str] = mapped_column(SealedRef("audit_search_hits.child_id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
