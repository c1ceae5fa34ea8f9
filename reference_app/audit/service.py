"""Recording audit events, and sealing them into the signed Merkle log."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
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
from reference_app.kit.crypto import DecryptionError
from reference_app.kit.merkle import CompactRange, leaf_hash
from reference_app.kit.sealing import Sealer, sealer_for

CHECKPOINT_ORIGIN = "contactpoint-audit/v1"
# Any constant will do: it names the sealer's PostgreSQL advisory lock.
_SEALER_LOCK = 0x43504155
# The label children named in details are sealed under, and the key a search lists them by.
DETAILS_CHILD = "audit_events.details.child"
RESULT_REFS = "result_refs"


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
    search_hits: Iterable[str] = (),
) -> int:
    """Append one typed event to the trail in the caller's transaction, with the children a
    search returned indexed (``search_hits``); return its id."""
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
        search_hits=search_hits,
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


# What the log hashes of an event. The child's id is hashed as the plain id (as read through
# the sealed column), so events written before the column was sealed verify as they always did.
DOCUMENT_FIELDS = ("id", *repository.EVENT_COLUMNS)


def document_of(values: Mapping[Any, Any]) -> dict[str, Any]:
    """An event's document from its column values."""
    document = {name: values[name] for name in DOCUMENT_FIELDS}
    document["occurred_at"] = _iso(document["occurred_at"])
    return document


def event_document(event: AuditEvent) -> dict[str, Any]:
    """The event as a plain document: what is hashed into the log and shown to reviewers."""
    return document_of({name: getattr(event, name) for name in DOCUMENT_FIELDS})


def document_leaf(document: dict[str, Any]) -> bytes:
    """Return the Merkle leaf hash of an event document's canonical bytes."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return leaf_hash(canonical.encode("utf-8"))


def sealed_children(db: Session, child_ids: Iterable[str]) -> list[str]:
    """Children for an event's details, sealed (base64 tokens, one per child, in order).

    Details are hashed as stored, so they must never hold a child's id in clear: a copy of the
    database would tell who found whom. The token is deterministic, so a subject access pack
    can still ask whether a search returned a child, and under a label of its own, so it
    matches no other column.
    """
    sealer = sealer_for(db.get_bind().dialect)
    return [
        base64.b64encode(sealer.ref(child_id, DETAILS_CHILD)).decode("ascii")
        for child_id in child_ids
    ]


def readable_details(db: Session, event: AuditEvent) -> dict[str, Any]:
    """An event's details for a reviewer: the children a search returned as their ids.

    Since 0017 a search's details hold ``result_refs`` (sealed); before, ``result_ids`` in
    clear. A reviewer sees ``result_ids`` either way. A token that does not open (altered in
    the database, which ``audit verify`` names) is shown as stored.
    """
    details: dict[str, Any] = json.loads(event.details)
    refs = details.pop(RESULT_REFS, None)
    if isinstance(refs, list):
        sealer = sealer_for(db.get_bind().dialect)
        details["result_ids"] = [_opened(sealer, ref) for ref in refs]
    return details


def _opened(sealer: Sealer, ref: Any) -> Any:
    try:
        return sealer.open_ref(base64.b64decode(ref, validate=True), DETAILS_CHILD)
    except (DecryptionError, ValueError, TypeError):
        return ref


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
    leaves = [document_leaf(document_of(event._mapping)) for event in events]
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
    repository.write_seal(db, first_seq, [e.id for e in events], checkpoint)
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
