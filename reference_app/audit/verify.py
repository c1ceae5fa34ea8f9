"""Verify the audit log: signatures, roots, and every entry against the signed leaves.

Each checkpoint carries the leaf hashes of the batch it sealed, and its signed root commits to
them, so a verifier that trusts the public key knows what every position held. Recomputing each
event's leaf and aligning the two sequences names the kind and place of any tampering: an edited
entry, a deleted one, an inserted one, a reordering, or a truncated tail.
"""

from __future__ import annotations

import base64
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from reference_app.audit import repository
from reference_app.audit.service import checkpoint_note, document_leaf, document_of
from reference_app.context import AppContext
from reference_app.kit.merkle import HASH_SIZE, CompactRange, root_from_leaf_hashes


class FindingKind(StrEnum):
    CHECKPOINT_GAP = "checkpoint_gap"
    CHECKPOINT_ROOT = "checkpoint_root"
    CHECKPOINT_SIGNATURE = "checkpoint_signature"
    DELETED = "deleted"
    EDITED = "edited"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    UNSEALED = "unsealed"
    WITNESS_MISMATCH = "witness_mismatch"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    message: str
    seq: int | None = None
    event_id: int | None = None


@dataclass
class VerifyReport:
    tree_size: int = 0
    checkpoints: int = 0
    entries: int = 0
    pending: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "checkpoints": self.checkpoints,
            "entries": self.entries,
            "pending": self.pending,
            "findings": [{**asdict(f), "kind": f.kind.value} for f in self.findings],
        }


def _signature_ok(
    keys: Mapping[str, Ed25519PublicKey], key_id: str, note: bytes, signature: bytes
) -> bool:
    key = keys.get(key_id)
    if key is None:
        return False
    try:
        key.verify(signature, note)
    except InvalidSignature:
        return False
    return True


def _authenticated_leaves(
    db: Session, keys: Mapping[str, Ed25519PublicKey], report: VerifyReport
) -> tuple[list[bytes], dict[int, bytes]]:
    """Check every checkpoint; return the signed leaf sequence and the root at each size."""
    leaves: list[bytes] = []
    roots: dict[int, bytes] = {}
    frontier = CompactRange()
    for cp in repository.all_checkpoints(db):
        report.checkpoints += 1
        note = checkpoint_note(cp.tree_size, cp.root_hash, cp.signed_at)
        if not _signature_ok(keys, cp.key_id, note, cp.signature):
            report.findings.append(
                Finding(
                    FindingKind.CHECKPOINT_SIGNATURE,
                    f"checkpoint at tree size {cp.tree_size} has no valid signature "
                    f"(key {cp.key_id!r}): it was forged or altered",
                )
            )
        if cp.first_seq != frontier.size:
            report.findings.append(
                Finding(
                    FindingKind.CHECKPOINT_GAP,
                    f"checkpoint at tree size {cp.tree_size} starts at position {cp.first_seq}, "
                    "but "
                    f"the previous one ended at {frontier.size}: a checkpoint was removed",
                    seq=frontier.size,
                )
            )
        batch = [
            cp.leaf_hashes[i : i + HASH_SIZE] for i in range(0, len(cp.leaf_hashes), HASH_SIZE)
        ]
        leaves.extend(batch)
        frontier.extend(batch)
        if frontier.size != cp.tree_size or frontier.root() != cp.root_hash:
            report.findings.append(
                Finding(
                    FindingKind.CHECKPOINT_ROOT,
                    f"checkpoint at tree size {cp.tree_size}: its leaves do not produce its signed "
                    "root; its batch was altered",
                    seq=cp.first_seq,
                )
            )
            frontier = CompactRange()
            frontier.extend(leaves)
        roots[cp.tree_size] = cp.root_hash
    report.tree_size = len(leaves)
    return leaves, roots


def _recomputed(db: Session, report: VerifyReport) -> list[tuple[int, int | None, bytes | None]]:
    """(position, event id, recomputed leaf) in log order; None for a missing one."""
    rows: list[tuple[int, int | None, bytes | None]] = []
    expected = 0
    for seq, event_id, values in repository.log_in_order(db):
        while expected < seq:
            rows.append((expected, None, None))
            expected += 1
        leaf = document_leaf(document_of(values)) if values is not None else None
        rows.append((seq, event_id, leaf))
        expected = seq + 1
    report.entries = len(rows)
    return rows


def _compare(
    signed: Sequence[bytes], rows: Sequence[tuple[int, int | None, bytes | None]]
) -> list[Finding]:
    found = [leaf for _, _, leaf in rows]
    if list(signed) == found:
        return []
    findings: list[Finding] = []
    signed_at = {leaf: i for i, leaf in enumerate(signed)}
    found_at = {leaf: j for j, leaf in enumerate(found) if leaf is not None}
    matcher = difflib.SequenceMatcher(a=list(signed), b=found, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op in ("replace", "insert"):
            for j in range(j1, j2):
                seq, event_id, leaf = rows[j]
                if leaf is None:
                    findings.append(
                        Finding(
                            FindingKind.DELETED,
                            f"log position {seq}: the event (id {event_id}) is missing"
                            if event_id is not None
                            else f"log position {seq} is missing",
                            seq=seq,
                            event_id=event_id,
                        )
                    )
                elif leaf in signed_at and signed_at[leaf] != seq:
                    findings.append(
                        Finding(
                            FindingKind.REORDERED,
                            f"log position {seq} holds the event signed at "
                            f"position {signed_at[leaf]}",
                            seq=seq,
                            event_id=event_id,
                        )
                    )
                elif seq < len(signed) and op == "replace":
                    findings.append(
                        Finding(
                            FindingKind.EDITED,
                            f"log position {seq} (event id {event_id}) differs from "
                            "what was signed",
                            seq=seq,
                            event_id=event_id,
                        )
                    )
                else:
                    findings.append(
                        Finding(
                            FindingKind.INSERTED,
                            f"log position {seq} (event id {event_id}) is not in any "
                            "signed checkpoint",
                            seq=seq,
                            event_id=event_id,
                        )
                    )
        if op in ("replace", "delete") and (i2 - i1) > (j2 - j1):
            gone = []
            for i in range(i1 + (j2 - j1), i2):
                if signed[i] in found_at:
                    findings.append(
                        Finding(
                            FindingKind.REORDERED,
                            f"the event signed at log position {i} now stands at position "
                            f"{rows[found_at[signed[i]]][0]}",
                            seq=i,
                            event_id=rows[found_at[signed[i]]][1],
                        )
                    )
                else:
                    gone.append(i)
            if not gone:
                continue
            if j2 >= len(found) and gone[-1] == len(signed) - 1:
                findings.append(
                    Finding(
                        FindingKind.TRUNCATED,
                        f"the log ends after {len(found)} entries, but checkpoints sign "
                        f"{len(signed)}: positions {gone[0]}-{gone[-1]} were cut off",
                        seq=gone[0],
                    )
                )
            else:
                findings.append(
                    Finding(
                        FindingKind.DELETED,
                        f"signed log positions {gone[0]}-{gone[-1]} are missing",
                        seq=gone[0],
                    )
                )
    return findings


def verify_log(
    db: Session,
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    now: datetime,
    unsealed_grace: timedelta = timedelta(minutes=5),
    witness: Sequence[Mapping[str, Any]] = (),
) -> VerifyReport:
    """Check the whole log and return every finding; an empty list means it is intact."""
    report = VerifyReport()
    signed, roots = _authenticated_leaves(db, public_keys, report)
    rows = _recomputed(db, report)
    report.findings.extend(_compare(signed, rows))
    report.pending = repository.pending_count(db)
    for event_id in repository.unsealed_event_ids(db, now - unsealed_grace):
        report.findings.append(
            Finding(
                FindingKind.UNSEALED,
                f"event id {event_id} was never sealed into the log (inserted behind "
                "the log's back, "
                "or the sealer is not running)",
                event_id=event_id,
            )
        )
    for seen in witness:
        size = int(seen["tree_size"])
        root = base64.b64decode(seen["root_hash"])
        note = checkpoint_note(size, root, datetime.fromisoformat(seen["signed_at"]))
        if not _signature_ok(
            public_keys, seen["key_id"], note, base64.b64decode(seen["signature"])
        ):
            report.findings.append(
                Finding(
                    FindingKind.WITNESS_MISMATCH,
                    f"witness checkpoint at size {size} carries no valid signature",
                )
            )
        elif size > len(signed):
            report.findings.append(
                Finding(
                    FindingKind.TRUNCATED,
                    f"a witness holds a signed checkpoint at size {size}, "
                    "but the log now signs only "
                    f"{len(signed)}: the tail and its checkpoints were removed",
                    seq=len(signed),
                )
            )
        # A witness usually holds a size we signed a checkpoint at; recompute only otherwise.
        elif (roots[size] if size in roots else root_from_leaf_hashes(signed[:size])) != root:
            report.findings.append(
                Finding(
                    FindingKind.WITNESS_MISMATCH,
                    f"the log at size {size} does not match the witness's signed root: "
                    "it was rewritten",
                )
            )
    return report


def verify_instance(ctx: AppContext, witness: Sequence[Mapping[str, Any]] = ()) -> VerifyReport:
    """Verify an instance's whole log through a read-only connection of its own (on SQLite the
    registry's engine would hold the write lock), as `contactpoint audit verify` does."""
    from sqlalchemy.orm import Session

    from reference_app.kit.db import make_engine, snapshot
    from reference_app.kit.sealing import Sealer, bind

    reader = make_engine(ctx.settings.database_url, pool_size=1, read_only=True)
    bind(reader, Sealer.of(ctx.keyring))
    try:
        with snapshot(reader) as conn, Session(bind=conn) as session:
            return verify_log(
                session, ctx.keyring.audit_public_keys, now=ctx.clock.now(), witness=witness
            )
    finally:
        reader.dispose()
