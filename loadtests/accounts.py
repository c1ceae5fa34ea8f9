"""Many loginable accounts with caseloads, for loading the reference registry like a real crowd.

The generator gives working credentials to a few personas only; every other practitioner it
makes has no password. A load of hundreds of enquiries a second needs hundreds of accounts (each
role's quota allows tens of views a minute), and a crowd that looks like ContactPoint's users
looks up children its own service works with. `contactpoint load accounts` picks generated
practitioners of each role in the chosen LAs, gives them fresh passwords and TOTP secrets (hashed
with the instance's Argon2 settings), and writes a personas file where each account carries a
caseload: children its organisation is involved with, with the fields a practitioner would search
by (decrypted with the instance's keys). White-box: it needs the database and the keys file.

With `counts` (accounts wanted of each role, as `contactpoint load --reference` sizes them for
its profile's peak) it takes practitioners whose service has a caseload from every LA in turn,
and where the generated workforce is too thin (a small population has a few practitioners of a
role per LA) it adds **colleagues**: new accounts in the same services, with a neutral display
name and no personal details, created a month ago (established, as a real workforce is).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text

from loadtests.model import KIND_ROLES
from reference_app.alerts.models import Canary
from reference_app.children.models import Child
from reference_app.config import Settings
from reference_app.kit.crypto import Crypto
from reference_app.kit.db import make_engine
from reference_app.kit.keys import Keyring, load_keyring
from reference_app.kit.sealing import Sealer, bind
from reference_app.practitioners.models import Practitioner
from synthetic_data.runner import Argon2Settings, _hash, new_credentials, store_credentials

ROLES = sorted(set(KIND_ROLES.values()))
DATA_MANAGER = KIND_ROLES["data_manager"]
COLLEAGUE_PREFIX = "load-colleague-"


def provision(
    settings: Settings,
    out: Path,
    *,
    per_role: int = 0,
    las: int,
    caseload: int = 20,
    workers: int = 2,
    keyring: Keyring | None = None,
    counts: dict[str, int] | None = None,
    keep: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Give `per_role` accounts of each role in the `las` largest LAs credentials; write `out`.

    With `counts`, give that many accounts of each role named in it instead (see the module
    docstring), from the `las` largest LAs, adding colleagues where the population has too few.
    Accounts named in `keep` (another personas file's) keep their credentials and are not used.
    """
    keys = keyring or load_keyring(settings)
    engine = make_engine(settings.database_url)
    bind(engine, Sealer.of(keys))  # the shield flags are sealed: read through the keys
    crypto = Crypto(keys)
    added = 0
    if counts is not None:
        with engine.begin() as conn:
            added = _add_colleagues(conn, crypto, Sealer.of(keys), las, caseload, counts, keep)
        per_role = max(counts.values(), default=0)
    with engine.connect() as conn:
        la_rows = conn.execute(
            text(
                "SELECT la.id, la.ons_code FROM local_authorities la "
                "JOIN practitioners p ON p.local_authority_id = la.id "
                "GROUP BY la.id, la.ons_code ORDER BY count(*) DESC LIMIT :n"
            ),
            {"n": las},
        ).all()
        codes = {int(r[0]): str(r[1]) for r in la_rows}
        picked: list[Any] = []
        for role in ROLES:
            picked += conn.execute(
                text(
                    "SELECT id, username, role, organisation_id, local_authority_id FROM ("
                    " SELECT p.*, row_number() OVER (PARTITION BY local_authority_id ORDER BY id)"
                    " AS k FROM practitioners p WHERE role = :role AND status = 'active'"
                    " AND local_authority_id IN :las) s WHERE k <= :n ORDER BY id"
                ).bindparams(bindparam("las", expanding=True)),
                {"role": role, "las": list(codes), "n": per_role},
            ).all()
        auditors = conn.execute(
            text(
                "SELECT id, username, role, organisation_id, local_authority_id FROM practitioners "
                "WHERE role = 'national_auditor' AND status = 'active' ORDER BY id"
            )
        ).all()
        picked = [r for r in picked if r.username not in keep]
        auditors = [r for r in auditors if r.username not in keep][:1]
        orgs = sorted({int(r.organisation_id) for r in picked})
        cases = _caseloads(conn, Sealer.of(keys), orgs, caseload)
        if counts is not None:
            picked = _pick(picked, cases, counts)
        children = _children(conn, crypto, sorted({c for ids in cases.values() for c in ids}))
    accounts = [*picked, *auditors]
    credentials = new_credentials(len(accounts))
    cost = Argon2Settings.of(settings)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        hashes = list(pool.map(_hash, [(cost, pw) for pw, _ in credentials], chunksize=16))
    with engine.begin() as conn:
        store_credentials(conn, crypto, [int(r.id) for r in accounts], credentials, hashes)
    personas = [
        {
            "username": row.username,
            "password": password,
            "totp_secret": totp,
            "role": row.role,
            "local_authority": codes.get(int(row.local_authority_id)),
            "caseload": [children[c] for c in cases.get(int(row.organisation_id), [])],
        }
        for row, (password, totp) in zip(accounts, credentials, strict=True)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.touch(mode=0o600)
    partial.write_text(json.dumps(personas, indent=1), encoding="utf-8")
    partial.replace(out)
    engine.dispose()
    with_caseload = sum(1 for p in personas if p["caseload"])
    return {
        "accounts": len(personas),
        "local_authorities": len(codes),
        "with_caseload": with_caseload,
        "caseload_children": len(children),
        "by_role": dict(sorted(Counter(str(r.role) for r in picked).items())),
        "colleagues_added": added,
        "out": str(out),
    }


def _pick(rows: list[Any], cases: dict[int, list[str]], counts: dict[str, int]) -> list[Any]:
    """Up to `counts[role]` accounts of each role whose service has a caseload (a data manager
    needs none), the LAs taken in turn (every LA's first, then every LA's second ...)."""
    fit = [r for r in rows if r.role == DATA_MANAGER or cases.get(int(r.organisation_id))]
    rank: Counter[tuple[str, int]] = Counter()
    ordered = []
    for row in sorted(fit, key=lambda r: int(r.id)):
        rank[(row.role, int(row.local_authority_id))] += 1
        ordered.append((rank[(row.role, int(row.local_authority_id))], int(row.id), row))
    taken: Counter[str] = Counter()
    out = []
    for _, _, row in sorted(ordered, key=lambda item: item[:2]):
        if taken[row.role] < counts.get(row.role, 0):
            taken[row.role] += 1
            out.append(row)
    return sorted(out, key=lambda r: int(r.id))


def _add_colleagues(
    conn: Connection,
    crypto: Crypto,
    sealer: Sealer,
    las: int,
    caseload: int,
    counts: dict[str, int],
    keep: frozenset[str],
) -> int:
    """Add accounts to services with a caseload until each role in `counts` has that many
    active practitioners fit to load with (in the `las` largest LAs); return how many."""
    la_ids = [
        int(r[0])
        for r in conn.execute(
            text(
                "SELECT la.id FROM local_authorities la JOIN practitioners p"
                " ON p.local_authority_id = la.id GROUP BY la.id ORDER BY count(*) DESC LIMIT :n"
            ),
            {"n": las},
        )
    ]
    rows = conn.execute(
        text(
            "SELECT id, username, role, organisation_id, local_authority_id FROM practitioners"
            " WHERE status = 'active' AND local_authority_id IN :las AND role IN :roles"
            " ORDER BY id"
        ).bindparams(bindparam("las", expanding=True), bindparam("roles", expanding=True)),
        {"las": la_ids, "roles": sorted(counts)},
    ).all()
    rows = [r for r in rows if r.username not in keep]
    cases = _caseloads(conn, sealer, sorted({int(r.organisation_id) for r in rows}), caseload)
    fit = [r for r in rows if r.role == DATA_MANAGER or cases.get(int(r.organisation_id))]
    existing = conn.execute(
        text("SELECT count(*) FROM practitioners WHERE username LIKE :p"),
        {"p": COLLEAGUE_PREFIX + "%"},
    ).scalar_one()
    created = datetime.now(UTC) - timedelta(days=30)
    new: list[dict[str, Any]] = []
    for role, wanted in sorted(counts.items()):
        services = [r for r in fit if r.role == role]
        for i in range(max(0, wanted - len(services)) if services else 0):
            peer = services[i % len(services)]
            number = existing + len(new) + 1
            new.append(
                {
                    "username": f"{COLLEAGUE_PREFIX}{number:06d}",
                    "display_name_enc": crypto.cipher.encrypt(
                        f"Load colleague {number}", "practitioners.display_name"
                    ),
                    "role": role,
                    "organisation_id": int(peer.organisation_id),
                    "local_authority_id": int(peer.local_authority_id),
                    "password_hash": "!",  # no login until provisioning gives it credentials
                    "totp_secret_enc": b"",
                    "status": "active",
                    "authz_version": 1,
                    "created_at": created,
                    "role_granted_at": created,
                    "role_pending": False,
                }
            )
    if new:
        conn.execute(insert(Practitioner), new)
    return len(new)


def _caseloads(conn: Any, sealer: Sealer, orgs: list[int], n: int) -> dict[int, list[str]]:
    """Up to ``n`` children each organisation works with (current, confirmed, not sensitive),
    whose records any of its staff may see in full: open and never protected (shielded or in a
    shielded child's household), first involvements first.

    The involvement's child reference and the shield flags are sealed, so no SQL joins or
    filters on them: the involvements are read and opened first, then the children they name
    are checked by id, their flags opened here.
    """
    involved: list[tuple[int, str]] = [
        (int(org), sealer.open_ref(token, "involvements.child_id"))
        for org, token in conn.execute(
            text(
                "SELECT organisation_id, child_id FROM involvements"
                " WHERE organisation_id IN :orgs AND ended_on IS NULL AND NOT sensitive"
                " AND confirmed_at IS NOT NULL ORDER BY organisation_id, id"
            ).bindparams(bindparam("orgs", expanding=True)),
            {"orgs": orgs},
        )
    ]
    visible = _visible(conn, sorted({child for _, child in involved}))
    cases: dict[int, list[str]] = defaultdict(list)
    for org, child in involved:
        if child in visible and len(cases[org]) < n:
            cases[org].append(child)
    return cases


def _visible(conn: Connection, ids: list[str]) -> set[str]:
    """Which of these children are open, neither shielded nor in a shielded household, and not
    canaries (honeytokens no legitimate workflow touches: a view of one is an alert)."""
    found: set[str] = set()
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            select(Child.id, Child.shielded, Child.household_shielded).where(
                Child.id.in_(ids[start : start + 5000]),
                Child.archived_at.is_(None),
                Child.deceased_recorded_at.is_(None),
                Child.id.not_in(select(Canary.child_id)),
            )
        )
        found.update(
            child_id for child_id, shielded, household in rows if not (shielded or household)
        )
    return found


def _children(conn: Any, crypto: Crypto, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Search fields of these children, decrypted as the registry would."""
    cipher = crypto.cipher
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            text(
                "SELECT c.id, c.given_name_enc, c.family_name_enc, c.date_of_birth_enc,"
                " c.address_enc, la.ons_code FROM children c"
                " JOIN local_authorities la ON la.id = c.local_authority_id WHERE c.id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids[start : start + 5000]},
        )
        for row in rows:
            address = json.loads(cipher.decrypt(row.address_enc, "children.address"))
            out[str(row.id)] = {
                "child_id": str(row.id),
                "given_name": cipher.decrypt(row.given_name_enc, "children.given_name"),
                "family_name": cipher.decrypt(row.family_name_enc, "children.family_name"),
                "date_of_birth": cipher.decrypt(row.date_of_birth_enc, "children.date_of_birth"),
                "postcode": address.get("postcode"),
                "local_authority": str(row.ons_code),
            }
    return out
