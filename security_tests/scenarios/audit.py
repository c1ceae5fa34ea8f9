"""Audit: every view and search on the trail with its reason, nothing personal in clear text in
the trail or in a stolen dump, denials recorded, and a signed log that names each tampering.

The event scenarios read the trail through the API as the LA's data manager. The white-box ones
(``needs=["database"]``) read the registry's tables and check the log with the registry's own
verifier (`reference_app.audit.verify`, shipped with the harness). Tampering happens inside a
transaction that is verified and rolled back, so the target is never left changed. The verifier
needs the audit public keys, and, since the trail's child ids are sealed and each leaf hashes
the plain id, the registry's keys to open them: from the keys file named by
``CONTACTPOINT_KEYS_FILE`` (the registry's own setting), or the ``keys.json`` beside an SQLite
registry. Everything else reads the tables as a thief would, without keys: a child's events are
found through the API, never by matching its id against a stored column.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reference_app.audit.verify import FindingKind, VerifyReport, verify_log
from reference_app.kit.db import snapshot
from reference_app.kit.keys import KeyMaterialError, parse_document
from reference_app.kit.sealing import Sealer, bind
from security_tests.context import (
    DATA_MANAGER,
    Caller,
    Child,
    Context,
    error_code,
    expect_error,
    fictional_family_name,
    status_text,
)
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.target import API

VIEW_REASONS = ("caf_assessment", "contact_practitioner", "safeguarding", "service_delivery")
PRACTITIONER_ROLES = (
    "health_practitioner",
    "education_practitioner",
    "voluntary_practitioner",
    "social_care_practitioner",
    "police_practitioner",
    "youth_offending_practitioner",
)
# No given name the harness gives children: a colleague's name never passes for the child's.
COLLEAGUE_NAME = "Harness Colleague"
VIEWED = "child:record:viewed"
SEARCHED = "child:search:performed"
DENIED = "access:denied"
REFUSED = "access:refused"
NATIONAL_AUDITOR = "national_auditor"
# A hit must not sit inside a longer word, base64 or hex text (ciphertext, keyed hashes).
_EDGE = "A-Za-z0-9+/"


def _colleague(ctx: Context, manager: Caller) -> Caller:
    """A throwaway practitioner of the data manager's local authority (whose trail it reads)."""
    la = manager.account.local_authority
    template = ctx.persona_in(PRACTITIONER_ROLES, la)
    if template is None:
        ctx.note(f"no practitioner persona in {la}: a second data manager acts instead")
        return ctx.fresh(DATA_MANAGER, display_name=COLLEAGUE_NAME)
    return ctx.fresh(template.role, like=template, display_name=COLLEAGUE_NAME)


def _events(reader: Caller, **filters: Any) -> list[dict[str, Any]]:
    response = reader.get("/audit/events", params={"limit": 500, **filters})
    expect(
        response.status_code == 200,
        f"the data manager cannot read the audit trail: {status_text(response)}",
    )
    return list(response.json())


def _wait_events(
    ctx: Context, reader: Caller, wanted: Callable[[list[dict[str, Any]]], bool], **filters: Any
) -> list[dict[str, Any]]:
    """The trail's events matching ``filters``, once ``wanted`` accepts them (or the last read)."""
    last: list[dict[str, Any]] = []

    def probe() -> list[dict[str, Any]] | None:
        nonlocal last
        last = _events(reader, **filters)
        return last if wanted(last) else None

    return ctx.wait_for(probe, within=ctx.target.alert_within) or last


def _personal(child: Child) -> dict[str, str]:
    """What identifies the child, by kind (the failure message names kinds, never values)."""
    compact = child.postcode.replace(" ", "")
    year, month, day = child.date_of_birth.split("-")
    return {
        "given name": child.given_name,
        "family name": child.family_name,
        "date of birth": child.date_of_birth,
        "date of birth (d/m/y)": f"{day}/{month}/{year}",
        "postcode": child.postcode,
        "postcode (no space)": compact,
    }


def _found(haystack: str, needles: dict[str, str]) -> list[str]:
    """The kinds of ``needles`` standing as whole words in ``haystack`` (case-insensitive)."""
    return [
        kind
        for kind, value in needles.items()
        if re.search(rf"(?<![{_EDGE}]){re.escape(value)}(?![{_EDGE}])", haystack, re.IGNORECASE)
    ]


def _cell(value: Any) -> str:
    """A stored value as text (binary as Latin-1, so every byte maps to one character)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return "" if value is None else str(value)


def _views_and_search(ctx: Context, reason_text: bool = False) -> tuple[Caller, Caller, Child]:
    """A colleague views a new child once per reason and finds it by search."""
    manager = ctx.caller(DATA_MANAGER)
    child = ctx.new_child(manager)
    colleague = _colleague(ctx, manager)
    ctx.involve(colleague, child)
    for reason in VIEW_REASONS:
        # Free text a user might type: the trail must keep it sealed, never in clear.
        said = f"{reason}; about {child.given_name} {child.family_name}" if reason_text else reason
        response = colleague.view(child.child_id, reason=said)
        expect(
            response.status_code == 200,
            f"the colleague's view with reason {reason} answered {response.status_code}",
        )
    found = colleague.search(
        family_name=child.family_name,
        given_name=child.given_name,
        date_of_birth=child.date_of_birth,
        postcode=child.postcode,
    )
    expect(found.status_code == 200, f"the colleague's search answered {found.status_code}")
    expect(
        any(r.get("child_id") == child.child_id for r in found.json().get("results", [])),
        "the search by every criterion did not find the child",
    )
    return manager, colleague, child


@scenario(
    "audit.views-and-searches-recorded",
    owasp=["API1:2023"],
    asvs=["16.2.1", "16.3.2"],
    severity=Severity.HIGH,
    guards=["audit_trail"],
)
def views_and_searches_recorded(ctx: Context) -> None:
    """Every record view is on the trail with its reason, and every search with its results."""
    manager, colleague, child = _views_and_search(ctx)
    me = colleague.account.id

    def all_views(events: list[dict[str, Any]]) -> bool:
        return len([e for e in events if e.get("actor_id") == me]) >= len(VIEW_REASONS)

    views = [
        e
        for e in _wait_events(ctx, manager, all_views, child_id=child.child_id, tag=VIEWED)
        if e.get("actor_id") == me
    ]
    reasons = sorted(str(e.get("reason_code")) for e in views)
    expect(
        reasons == sorted(VIEW_REASONS),
        f"{len(VIEW_REASONS)} views with reasons {list(VIEW_REASONS)} left {len(views)} "
        f"{VIEWED} events with reasons {reasons}",
    )
    for event in views:
        expect(
            event.get("outcome") == "allowed" and event.get("occurred_at"),
            f"view event {event.get('id')} lacks its outcome or time: {event}",
        )
        expect(
            event.get("relationship"),
            f"view event {event.get('id')} does not say why access was allowed",
        )

    def names_child(events: list[dict[str, Any]]) -> bool:
        return any(child.child_id in json.dumps(e.get("details")) for e in events)

    searches = _wait_events(ctx, manager, names_child, actor_id=me, tag=SEARCHED)
    expect(
        names_child(searches),
        f"the colleague's search is not on the trail with the child it returned "
        f"({len(searches)} {SEARCHED} events by the colleague)",
    )
    ctx.note(f"{len(views)} view events with reasons {reasons}; {len(searches)} search events")


@scenario(
    "audit.trail-holds-no-personal-data",
    owasp=["API3:2023"],
    asvs=["16.2.5"],
    severity=Severity.HIGH,
    guards=["audit_trail"],
)
def trail_holds_no_personal_data(ctx: Context) -> None:
    """The trail a reviewer reads holds no child's name, birth date or postcode in clear."""
    manager, colleague, child = _views_and_search(ctx, reason_text=True)
    about = _events(manager, child_id=child.child_id)
    by = _events(manager, actor_id=colleague.account.id)
    tags = {e.get("tag") for e in about} | {e.get("tag") for e in by}
    expect(
        VIEWED in tags and SEARCHED in tags,
        f"the views and the search are not on the trail (tags read: {sorted(map(str, tags))}): "
        "nothing to judge",
    )
    shown = _found(json.dumps(about + by, ensure_ascii=False), _personal(child))
    expect(not shown, f"the audit trail shows the child's {', '.join(shown)} in clear")
    ctx.note(f"{len(about) + len(by)} events read, none with the child's personal data")


@scenario(
    "audit.trail-tables-hold-no-personal-data",
    owasp=["API3:2023"],
    asvs=["16.2.5"],
    severity=Severity.HIGH,
    guards=["audit_trail"],
    needs=["database"],
)
def trail_tables_hold_no_personal_data(ctx: Context) -> None:
    """No column of the audit tables holds a child's name, birth date, postcode or id in clear."""
    start = _last_event(ctx)
    manager, _, child = _views_and_search(ctx, reason_text=True)
    # The child's events are found through the API: the tables seal its id, and the harness
    # holds no keys to match it.
    views = _events(manager, child_id=child.child_id, tag=VIEWED)
    expect(views, f"no {VIEWED} event for the child on the trail: nothing to judge")
    needles = _personal(child) | {"identifier": child.child_id}
    shown: dict[str, list[str]] = {}
    rows_read = 0
    with ctx.database.connect() as conn:
        for table in _audit_tables(conn):
            for row in _rows_since(conn, table, start):
                rows_read += 1
                for column, value in row.items():
                    for kind in _found(_cell(value), needles):
                        shown.setdefault(f"{table}.{column}", []).append(kind)
    expect(
        not shown,
        "audit columns hold the child's personal data in clear: "
        + "; ".join(f"{where}: {', '.join(sorted(set(k)))}" for where, k in shown.items()),
    )
    ctx.note(f"{rows_read} audit rows written since the scenario began, none in clear")


def _audit_tables(conn: Connection) -> list[str]:
    return sorted(t for t in inspect(conn).get_table_names() if t.startswith("audit"))


def _rows_since(conn: Connection, table: str, start: int) -> Iterable[dict[str, Any]]:
    """The table's rows about events after ``start`` (every row when it names no event)."""
    columns = {c["name"] for c in inspect(conn).get_columns(table)}
    if table == "audit_events":
        where = " WHERE id > :start"
    elif "event_id" in columns:
        where = " WHERE event_id > :start"
    else:
        where = ""
    # Table names come from the database's own catalogue, not from input.
    query = text(f'SELECT * FROM "{table}"{where}')  # noqa: S608
    for row in conn.execute(query, {"start": start} if where else {}):
        yield dict(row._mapping)


@scenario(
    "audit.dump-holds-no-clear-text",
    owasp=["API3:2023", "API8:2023"],
    asvs=["14.2.4"],
    severity=Severity.CRITICAL,
    gap="field encryption has no development switch; a build without it would be another build",
    needs=["database"],
)
def dump_holds_no_clear_text(ctx: Context) -> None:
    """A stolen copy of the children and carers tables shows no name, birth date or postcode."""
    manager = ctx.caller(DATA_MANAGER)
    child = ctx.new_child(manager)
    carer = {
        "given_name": fictional_family_name(),
        "family_name": child.family_name,
        "relationship": "mother",
        # Ofcom keeps 07700 900000-900999 for drama: the number reaches nobody.
        "phone": f"07700 900{secrets.randbelow(1000):03d}",
        "email": f"{fictional_family_name().lower()}@example.org",
    }
    added = manager.post(f"/children/{child.child_id}/carers", json=carer)
    expect(added.status_code == 201, f"cannot add a carer to the child: {added.status_code}")
    needles = _personal(child) | {
        "carer's given name": carer["given_name"],
        "carer's phone": carer["phone"],
        "carer's email": carer["email"],
    }
    # Given names are short and common: looked for in this child's and carer's rows only.
    unique = {k: v for k, v in needles.items() if k != "given name"}
    shown: dict[str, set[str]] = {}
    rows_read = 0
    # The link's child reference is sealed: the carer's rows are found by the carer's id.
    carer_id = added.json()["carer_id"]
    with ctx.database.connect() as conn:
        own = {
            "children": ("id = :c", {"c": child.child_id}),
            "carers": ("id = :k", {"k": carer_id}),
            "child_carers": ("carer_id = :k", {"k": carer_id}),
        }
        for table, (where, params) in own.items():
            found = 0
            for row in conn.execute(text(f"SELECT * FROM {table} WHERE {where}"), params):  # noqa: S608
                found += 1
                for column, value in row._mapping.items():
                    for kind in _found(_cell(value), needles):
                        shown.setdefault(f"{table}.{column}", set()).add(kind)
            expect(found, f"the child's rows are not in {table}: nothing to judge")
        for table in ("children", "carers"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                rows_read += 1
                for column, value in row._mapping.items():
                    for kind in _found(_cell(value), unique):
                        shown.setdefault(f"{table}.{column}", set()).add(kind)
    expect(
        not shown,
        "the dump holds personal data in clear: "
        + "; ".join(f"{where}: {', '.join(sorted(k))}" for where, k in shown.items()),
    )
    ctx.note(f"{rows_read} rows of children and carers read: no clear text of the harness child")


def _key_document(ctx: Context) -> dict[str, Any]:
    """The registry's keys file (or a file of its audit public keys)."""
    candidates = []
    if os.environ.get("CONTACTPOINT_KEYS_FILE"):
        candidates.append(Path(os.environ["CONTACTPOINT_KEYS_FILE"]))
    url = make_url(ctx.target.database_url or "")
    if url.get_backend_name() == "sqlite" and url.database:
        candidates.append(Path(url.database).parent / "keys.json")
    for path in candidates:
        if path.is_file():
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict):
                return doc
    raise Skip(
        "the audit public keys are needed to verify the log: set CONTACTPOINT_KEYS_FILE to the "
        "registry's keys file (or a file of its audit_public_keys)"
    )


def _audit_keys(ctx: Context) -> dict[str, Ed25519PublicKey]:
    """The registry's audit public keys, from its keys file (public keys only are kept)."""
    doc = _key_document(ctx)
    public = doc.get("audit_public_keys")
    if isinstance(public, dict):
        return {
            kid: Ed25519PublicKey.from_public_bytes(base64.b64decode(v))
            for kid, v in public.items()
        }
    return {
        kid: Ed25519PrivateKey.from_private_bytes(base64.b64decode(v)).public_key()
        for kid, v in doc["audit_signing_keys"].items()
    }


def _open_trail(ctx: Context) -> None:
    """Let the harness's connection open the trail's sealed child ids, which each leaf hashes
    in clear: with the registry's keys file, or skip."""
    try:
        keyring = parse_document(_key_document(ctx))
    except KeyMaterialError as exc:
        raise Skip(
            "the trail's child ids are sealed and each leaf hashes the plain id: verifying "
            f"needs the registry's whole keys file, not its public keys alone ({exc})"
        ) from None
    bind(ctx.database, Sealer.of(keyring))


def _last_event(ctx: Context) -> int:
    """The id of the newest audit event (0 when there is none)."""
    with ctx.database.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_events")).scalar_one())


def _activity(ctx: Context) -> dict[int, int]:
    """Views, a search and what goes with them; once the sealer has sealed every event they
    wrote, their log positions by event id."""
    start = _last_event(ctx)
    _views_and_search(ctx)
    last = _last_event(ctx)
    query = text(
        "SELECT e.id, l.seq FROM audit_events e "
        "LEFT JOIN audit_log_entries l ON l.event_id = e.id "
        "WHERE e.id > :start AND e.id <= :last ORDER BY e.id"
    )

    def probe() -> dict[int, int] | None:
        with ctx.database.connect() as conn:
            rows = conn.execute(query, {"start": start, "last": last}).all()
        if any(seq is None for _, seq in rows):
            return None
        return {int(event): int(seq) for event, seq in rows}

    sealed = ctx.wait_for(probe, within=ctx.target.alert_within)
    expect(
        sealed is not None,
        f"events {start + 1}-{last} were not sealed into the log within "
        f"{ctx.target.alert_within:.0f} s",
    )
    assert sealed is not None
    expect(len(sealed) >= 4, f"the activity wrote {len(sealed)} events, 4 or more expected")
    return sealed


def _verify(conn: Connection, keys: dict[str, Ed25519PublicKey]) -> VerifyReport:
    with Session(bind=conn) as db:
        return verify_log(db, keys, now=datetime.now(UTC))


@scenario(
    "audit.log-verifies",
    owasp=["API8:2023"],
    asvs=["16.4.2", "16.4.3"],
    severity=Severity.HIGH,
    gap="sealing and signing have no development switch; the verifier is the registry's own",
    needs=["database"],
)
def log_verifies(ctx: Context) -> None:
    """The sealed log and its signed checkpoints verify, and agree with the published one."""
    keys = _audit_keys(ctx)
    _open_trail(ctx)
    positions = _activity(ctx)
    latest = ctx.caller(DATA_MANAGER).get("/audit/checkpoints/latest")
    expect(latest.status_code == 200, f"no published checkpoint: {latest.status_code}")
    witness = latest.json()
    with snapshot(ctx.database) as conn, Session(bind=conn) as db:
        report = verify_log(db, keys, now=datetime.now(UTC), witness=[witness])
    expect(
        report.ok,
        f"the untouched log does not verify: {[f.message for f in report.findings][:5]}",
    )
    expect(
        report.tree_size > max(positions.values()),
        f"checkpoints sign {report.tree_size} entries, short of the scenario's events at "
        f"positions {sorted(positions.values())}",
    )
    ctx.note(
        f"{report.checkpoints} checkpoints sign {report.tree_size} entries; the published "
        f"checkpoint at size {witness.get('tree_size')} agrees"
    )


Tamper = Callable[[Connection], None]
# What the registry's verifier must name for each kind of tampering.
_REFUSED = ("append-only", "permission denied", "read-only", "readonly")


def _tampered(
    ctx: Context, keys: dict[str, Ed25519PublicKey], tamper: Tamper
) -> VerifyReport | str:
    """Tamper, verify in the same transaction and roll back; a refusal's text if the database
    itself refused the change."""
    engine = ctx.database
    postgres = engine.dialect.name == "postgresql"
    # One transaction from first read to last, rolled back: the tampering is never committed,
    # and a seal committed meanwhile cannot split what the verifier reads.
    with snapshot(engine) as conn:
        if postgres:
            # A superuser may switch the append-only triggers off; anyone else meets them.
            savepoint = conn.begin_nested()
            try:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                savepoint.commit()
            except DBAPIError:
                savepoint.rollback()
        try:
            tamper(conn)
        except DBAPIError as exc:
            message = str(exc.orig).lower()
            if any(word in message for word in _REFUSED):
                return str(exc.orig).splitlines()[0]
            raise
        return _verify(conn, keys)


def _run(conn: Connection, *statements: tuple[str, dict[str, Any]]) -> None:
    for statement, params in statements:
        conn.execute(text(statement), params)


@scenario(
    "audit.tampering-detected",
    owasp=["API8:2023"],
    asvs=["16.4.2"],
    severity=Severity.CRITICAL,
    gap="no switch weakens the log's proofs; each tampering is staged in a rolled-back transaction",
    needs=["database"],
)
def tampering_detected(ctx: Context) -> None:
    """Editing, deleting, inserting, reordering, truncating or altering a checkpoint is named."""
    keys = _audit_keys(ctx)
    _open_trail(ctx)
    positions = _activity(ctx)
    (e1, s1), (e2, s2), (e3, s3), (e4, s4) = sorted(positions.items())[:4]
    with ctx.database.connect() as conn:
        forged_id = int(conn.execute(text("SELECT max(id) FROM audit_events")).scalar_one())
        size, leaves = conn.execute(
            text(
                "SELECT tree_size, leaf_hashes FROM audit_checkpoints "
                "ORDER BY tree_size DESC LIMIT 1"
            )
        ).one()
    leaves = bytes(leaves)
    tail_events = (
        "DELETE FROM audit_events WHERE id IN (SELECT event_id FROM audit_log_entries "
        "WHERE seq >= (SELECT max(seq) - 1 FROM audit_log_entries))"
    )
    tail_entries = (
        "DELETE FROM audit_log_entries WHERE seq >= (SELECT max(seq) - 1 FROM audit_log_entries)"
    )
    cases: Sequence[tuple[str, Tamper, FindingKind, set[int] | None]] = (
        (
            "edit an event's reason",
            lambda c: _run(
                c,
                (
                    "UPDATE audit_events SET reason_code = 'emergency_override' WHERE id = :id",
                    {"id": e1},
                ),
            ),
            FindingKind.EDITED,
            {s1},
        ),
        (
            "delete an event",
            lambda c: _run(c, ("DELETE FROM audit_events WHERE id = :id", {"id": e2})),
            FindingKind.DELETED,
            {s2},
        ),
        (
            # Of a child already on the trail: its id is sealed, so a forger copies its token.
            "insert a forged view after the last sealed entry",
            lambda c: _run(
                c,
                (
                    "INSERT INTO audit_events (id, occurred_at, tag, outcome, child_id, "
                    "reason_code, details) SELECT :id, CURRENT_TIMESTAMP, :t, 'allowed', "
                    "child_id, 'safeguarding', '{}' FROM audit_events WHERE id = :e",
                    {"id": forged_id + 1_000_000, "t": VIEWED, "e": e1},
                ),
                (
                    "INSERT INTO audit_log_entries (seq, event_id) "
                    "SELECT max(seq) + 1, :id FROM audit_log_entries",
                    {"id": forged_id + 1_000_000},
                ),
            ),
            FindingKind.INSERTED,
            None,
        ),
        (
            "swap two events' positions",
            lambda c: _run(
                c,
                ("UPDATE audit_log_entries SET event_id = -1 WHERE seq = :s", {"s": s3}),
                ("UPDATE audit_log_entries SET event_id = :e WHERE seq = :s", {"e": e3, "s": s4}),
                ("UPDATE audit_log_entries SET event_id = :e WHERE seq = :s", {"e": e4, "s": s3}),
            ),
            FindingKind.REORDERED,
            {s3, s4},
        ),
        (
            "cut the last two entries",
            lambda c: _run(
                c,
                (tail_events, {}),
                (tail_entries, {}),
            ),
            FindingKind.TRUNCATED,
            None,
        ),
        (
            "alter a signed checkpoint's leaves",
            lambda c: _run(
                c,
                (
                    "UPDATE audit_checkpoints SET leaf_hashes = :b WHERE tree_size = :s",
                    {"b": bytes([leaves[0] ^ 1]) + leaves[1:], "s": size},
                ),
            ),
            FindingKind.CHECKPOINT_ROOT,
            None,
        ),
    )
    missed = []
    for label, tamper, kind, where in cases:
        outcome = _tampered(ctx, keys, tamper)
        if isinstance(outcome, str):
            ctx.note(f"{label}: the database refused it ({outcome})")
            continue
        named = {(f.kind, f.seq) for f in outcome.findings}
        seen = {seq for found, seq in named if found is kind}
        hit = any(found is kind for found, _ in named) and (where is None or where <= seen)
        ctx.note(f"{label}: {sorted(f'{k.value}@{s}' for k, s in named)}")
        if not hit:
            missed.append(f"{label} (expected {kind.value} at {sorted(where or [])})")
    with snapshot(ctx.database) as conn:
        after = _verify(conn, keys)
    expect(not missed, "tampering not named by the verifier: " + "; ".join(missed))
    expect(after.ok, f"the log does not verify after the rollbacks: {after.findings[:3]}")


@scenario(
    "audit.denials-recorded",
    owasp=["API5:2023"],
    asvs=["16.3.2"],
    severity=Severity.MEDIUM,
    gap="refusals are recorded unconditionally; no development switch stops it",
)
def denials_recorded(ctx: Context) -> None:
    """A refused request is on the trail as access:denied, with who, what and the refusal."""
    manager = ctx.caller(DATA_MANAGER)
    colleague = _colleague(ctx, manager)
    if colleague.account.role == DATA_MANAGER:
        raise Skip("no practitioner persona in the data manager's LA to be refused")
    tried = [
        ("GET", "/exports", colleague.get("/exports")),
        ("POST", "/users", colleague.post("/users", json={})),
    ]
    for _, _, response in tried:
        expect_error(response, 403)

    def all_denials(events: list[dict[str, Any]]) -> bool:
        return len(events) >= len(tried)

    events = _wait_events(ctx, manager, all_denials, actor_id=colleague.account.id, tag=DENIED)
    recorded = [
        (
            str(details.get("method")),
            str(details.get("route")),
            str(details.get("code")),
            str(event.get("outcome")),
        )
        for event in events
        if isinstance(details := event.get("details"), dict)
    ]
    for method, path, response in tried:
        code = str(error_code(response))
        expect(
            any(
                (m, c, o) == (method, code, "denied") and route in (path, API + path)
                for m, route, c, o in recorded
            ),
            f"the refused {method} {path} ({code}) is not on the trail as {DENIED} "
            f"(recorded for the colleague: {recorded})",
        )
    ctx.note(f"{len(recorded)} {DENIED} events for the colleague: {recorded}")


@scenario(
    "audit.refusals-audited",
    owasp=["API9:2023", "API5:2023"],
    asvs=["16.3.2", "16.3.3"],
    severity=Severity.HIGH,
    guards=["refusal_audit"],
)
def refusals_audited(ctx: Context) -> None:
    """Probing leaves a trace: another LA's child (404), an admin route (403) and a bad reason
    (400) are each on the trail with the route template (never the raw path), status, error
    code, who and from where, as the national auditor reads it."""
    manager = ctx.manager()
    child = ctx.new_child(manager)
    prober = ctx.outsider(DATA_MANAGER, manager)
    auditor = ctx.caller(NATIONAL_AUDITOR)
    template = "/children/{child_id}"
    tried = [
        (
            "PATCH",
            template,
            prober.patch(f"/children/{child.child_id}", json={"given_name": "Harness"}),
            404,
        ),
        ("POST", "/users", prober.post("/users", json={}), 403),
        ("GET", template, prober.view(child.child_id, reason="curiosity"), 400),
    ]
    for _, _, response, status in tried:
        expect_error(response, status)

    def readable(events: list[dict[str, Any]]) -> list[tuple[str, str, int, str]]:
        return [
            (
                str(details.get("method")),
                str(details.get("route")),
                int(details.get("status") or 0),
                str(details.get("code")),
            )
            for event in events
            if isinstance(details := event.get("details"), dict)
            and event.get("outcome") == "denied"
            and event.get("source")
        ]

    def trail() -> list[dict[str, Any]]:
        actor = prober.account.id
        return _events(auditor, actor_id=actor, tag=REFUSED) + _events(
            auditor, actor_id=actor, tag=DENIED
        )

    def complete(_: list[dict[str, Any]]) -> bool:
        return len(readable(trail())) >= len(tried)

    _wait_events(ctx, auditor, complete, actor_id=prober.account.id)
    events = trail()
    recorded = readable(events)
    missing = []
    for method, route, response, status in tried:
        code = str(error_code(response))
        if not any(
            (m, s, c) == (method, status, code) and r in (route, API + route)
            for m, r, s, c in recorded
        ):
            missing.append(f"{method} {route} ({status} {code})")
    expect(
        not missing,
        "refusals not on the trail with method, route template, status, code and source: "
        + "; ".join(missing)
        + f" (recorded for the prober: {recorded})",
    )
    raw = [e for e in events if child.child_id in json.dumps(e.get("details"))]
    expect(not raw, "a refusal's details hold the raw path (the child's identifier)")
    ctx.note(f"{len(recorded)} refusals on the trail for the prober: {recorded}")
