"""Recording audit events, and sealing them into the signed Merkle log."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from reference_app.access.principal import Principal
from reference_app.audit import repository
from reference_app.audit.models import AuditCheckpoint, AuditEvent
from reference_app.audit.tags import EventTag, Outcome
from reference_app.context import AppContext
from reference_app.kit.merkle import CompactRange, leaf_hash

CHECKPOINT_ORIGIN = "contactpoint-audit/v1"
# Any constant will do: it names the sealer's PostgreSQL advisory lock.
_SEALER_LOCK = 0x43504155


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Where a request came from, for the trail."""

    request_id: str | None
    source: str | None


def canonical_details(details: dict[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record(
    db: Session,
    ctx: AppContext,
    tag: EventTag,
    *,
    info: RequestInfo,
    principal: Principal | None = None,
    outcome: Outcome = Outcome.ALLOWED,
    child_id: str | None = None,
    reason_code: str | None = None,
    relationship: str | None = None,
    details: dict[str, Any] | None = None,
    actor_id: int | None = None,
) -> int:
    """Append one typed event to the trail in the caller's transaction; return its id."""
    return repository.append_event(
        db,
        {
            **_event_row(ctx.clock.now(), tag, info, child_id, details),
            "outcome": outcome.value,
            "actor_id": principal.user_id if principal else actor_id,
            "actor_role": principal.role.value if principal else None,
            "actor_organisation_id": principal.organisation_id if principal else None,
            "actor_local_authority_id": principal.local_authority_id if principal else None,
            "reason_code": reason_code,
            "relationship": relationship,
        },
    )


def record_per_child(
    db: Session,
    ctx: AppContext,
    tag: EventTag,
    *,
    info: RequestInfo,
    details_by_child: dict[str, dict[str, Any]],
) -> list[int]:
    """Append one event per child for an action of the system itself (no user acts), in two
    statements rather than two per child; return the event ids."""
    now = ctx.clock.now()
    return repository.append_events(
        db,
        [
            _event_row(now, tag, info, child_id, details) | {"outcome": Outcome.ALLOWED.value}
            for child_id, details in details_by_child.items()
        ],
    )


def _event_row(
    now: datetime,
    tag: EventTag,
    info: RequestInfo,
    child_id: str | None,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "occurred_at": now,
        "tag": tag.value,
        "source": info.source,
        "request_id": info.request_id,
        "child_id": child_id,
        "details": canonical_details(details),
    }


def sealed_text(ctx: AppContext, text: str, context: str) -> str:
    """Encrypt free text for the trail (a reason, a decision note): kept, never in clear."""
    return base64.b64encode(ctx.crypto.cipher.encrypt(text, context)).decode("ascii")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


def event_document(event: AuditEvent) -> dict[str, Any]:
    """The event as a plain document: what is hashed into the log and shown to reviewers."""
    return {
        "id": event.id,
        "occurred_at": _iso(event.occurred_at),
        "tag": event.tag,
        "outcome": event.outcome,
        "actor_id": event.actor_id,
        "actor_role": event.actor_role,
        "actor_organisation_id": event.actor_organisation_id,
        "actor_local_authority_id": event.actor_local_authority_id,
        "source": event.source,
        "request_id": event.request_id,
        "child_id": event.child_id,
        "reason_code": event.reason_code,
        "relationship": event.relationship,
        "details": event.details,
    }


def event_leaf(event: AuditEvent) -> bytes:
    """Return the Merkle leaf hash of an event's canonical bytes."""
    canonical = json.dumps(event_document(event), sort_keys=True, separators=(",", ":"))
    return leaf_hash(canonical.encode("utf-8"))


def checkpoint_note(tree_size: int, root: bytes, signed_at: datetime) -> bytes:
    """The signed text of a checkpoint, after the C2SP signed-note checkpoint layout."""
    root_b64 = base64.b64encode(root).decode("ascii")
    return f"{CHECKPOINT_ORIGIN}\n{tree_size}\n{root_b64}\n{_iso(signed_at)}\n".encode()


def sign_checkpoint(key: Ed25519PrivateKey, tree_size: int, root: bytes, at: datetime) -> bytes:
    return key.sign(checkpoint_note(tree_size, root, at))


def checkpoint_document(cp: AuditCheckpoint) -> dict[str, Any]:
    """A checkpoint as handed to witnesses: enough to verify and to compare later."""
    return {
        "origin": CHECKPOINT_ORIGIN,
        "tree_size": cp.tree_size,
        "root_hash": base64.b64encode(cp.root_hash).decode("ascii"),
        "signed_at": _iso(cp.signed_at),
        "key_id": cp.key_id,
        "signature": base64.b64encode(cp.signature).decode("ascii"),
    }


def seal(db: Session, ctx: AppContext) -> AuditCheckpoint | None:
    """Give pending events log positions and sign a checkpoint; None when there is nothing to do.

    Safe to run from several processes: on PostgreSQL an advisory lock keeps one sealer at a
    time, and on either backend the primary keys on positions and tree sizes refuse a second
    sealer's overlapping batch.
    """
    if db.get_bind().dialect.name == "postgresql":
        got = db.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _SEALER_LOCK})
        if not got.scalar_one():
            return None
    events = repository.pending_events(db, ctx.settings.audit_seal_batch)
    if not events:
        return None
    last = repository.latest_checkpoint(db)
    frontier = CompactRange.from_bytes(last.frontier) if last else CompactRange()
    first_seq = frontier.size
    leaves = [event_leaf(event) for event in events]
    frontier.extend(leaves)
    now = ctx.clock.now()
    key_id = ctx.keyring.audit_key_current
    root = frontier.root()
    checkpoint = AuditCheckpoint(
        tree_size=frontier.size,
        first_seq=first_seq,
        root_hash=root,
        leaf_hashes=b"".join(leaves),
        frontier=frontier.to_bytes(),
        signed_at=now,
        key_id=key_id,
        signature=sign_checkpoint(ctx.keyring.audit_signing_keys[key_id], frontier.size, root, now),
    )
    entries = [{"seq": first_seq + i, "event_id": e.id} for i, e in enumerate(events)]
    repository.write_seal(db, entries, checkpoint, [e.id for e in events])
    return checkpoint


def seal_all(ctx: AppContext) -> int:
    """Seal until nothing is pending, committing each batch; return how many were sealed."""
    sealed = 0
    while True:
        with ctx.sessions() as db, db.begin():
            checkpoint = seal(db, ctx)
            if checkpoint is None:
                return sealed
            sealed += checkpoint.tree_size - checkpoint.first_seq
