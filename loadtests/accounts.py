"""Many loginable accounts with caseloads, for loading the reference registry like a real crowd.

The generator gives working credentials to a few personas only; every other practitioner it
makes has no password. A load of hundreds of enquiries a second needs hundreds of accounts (each
role's quota allows tens of views a minute), and a crowd that looks like ContactPoint's users
looks up children its own service works with. `contactpoint load accounts` picks generated
practitioners of each role in the chosen LAs, gives them fresh passwords and TOTP secrets (hashed
with the instance's Argon2 settings), and writes a personas file where each account carries a
caseload: children its organisation is involved with, with the fields a practitioner would search
by (decrypted with the instance's keys). White-box: it needs the database and the keys file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from loadtests.model import KIND_ROLES
from reference_app.children.models import Child
from reference_app.config import Settings
from reference_app.kit.crypto import Crypto
from reference_app.kit.db import make_engine
from reference_app.kit.keys import Keyring, load_keyring
from reference_app.kit.sealing import Sealer, bind
from synthetic_data.runner import Argon2Settings, _hash, new_credentials, store_credentials

ROLES = sorted(set(KIND_ROLES.values()))


def provision(
    settings: Settings,
    out: Path,
    *,
    per_role: int,
    las: int,
    caseload: int = 20,
    workers: int = 2,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """Give `per_role` accounts of each role in the `las` largest LAs credentials; write `out`."""
    keys = keyring or load_keyring(settings)
    engine = make_engine(settings.database_url)
    bind(engine, Sealer.of(keys))  # the shield flags are sealed: read through the keys
    crypto = Crypto(keys)
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
                "WHERE role = 'national_auditor' AND status = 'active' ORDER BY id LIMIT 1"
            )
        ).all()
        orgs = sorted({int(r.organisation_id) for r in picked})
        cases = _caseloads(conn, Sealer.of(keys), orgs, caseload)
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
        "out": str(out),
    }


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
    """Which of these children are open, and neither shielded nor in a shielded household."""
    found: set[str] = set()
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            select(Child.id, Child.shielded, Child.household_shielded).where(
                Child.id.in_(ids[start : start + 5000]),
                Child.archived_at.is_(None),
                Child.deceased_recorded_at.is_(None),
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
