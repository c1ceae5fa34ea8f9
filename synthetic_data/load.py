"""Load generated chunks into the registry's database, encrypted and indexed as the app writes them.

Each chunk goes in one transaction together with its row in the load ledger
(`synthetic_load_chunks`), so an interrupted load leaves whole chunks or nothing of a chunk, and
a rerun with the same options skips what is there. PostgreSQL takes binary COPY; SQLite takes
batched inserts through SQLAlchemy Core (the same column types the app uses).

Personal fields go through the app's own `FieldCipher` and `BlindIndex`; blind indexes of
vocabulary values (names, surnames, dates) are computed once per value, not once per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyotp
from sqlalchemy import Connection, Table, text

from reference_app.carers.models import Carer, ChildCarer
from reference_app.children.models import Child
from reference_app.kit.clock import start_of_day
from reference_app.kit.crypto import Crypto
from reference_app.kit.sealing import Sealer, stored_table
from reference_app.practitioners.models import Practitioner
from reference_app.practitioners.service import NO_PASSWORD
from reference_app.services.models import Involvement, Organisation
from synthetic_data import pgcopy
from synthetic_data.plan import Plan
from synthetic_data.population import RELATIONSHIPS, ChunkData
from synthetic_data.tables import GENDERS, ChunkTables
from synthetic_data.vocab import vocabulary

S16 = npt.NDArray[np.bytes_]
# A child id (13 characters) sealed with AES-SIV: the id and a 16-byte tag.
SEALED_ID_BYTES = 13 + 16
BULK_TABLES = ("children", "carers", "child_carers", "involvements")
LEDGER_DDL = (
    """
    CREATE TABLE IF NOT EXISTS synthetic_load_runs (
        fingerprint VARCHAR(32) PRIMARY KEY,
        options TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        deferred_ddl TEXT NOT NULL,
        started_at VARCHAR(40) NOT NULL,
        indexed_at VARCHAR(40)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS synthetic_load_chunks (
        fingerprint VARCHAR(32) NOT NULL,
        chunk INTEGER NOT NULL,
        children INTEGER NOT NULL,
        loaded_at VARCHAR(40) NOT NULL,
        PRIMARY KEY (fingerprint, chunk)
    )
    """,
)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# How long before the load the generated staff's accounts were made (and given their role).
STAFF_TENURE = timedelta(days=365)


class Encoder:
    """Encrypt and index a chunk's rows for the registry's tables, as the app would write them."""

    def __init__(
        self, crypto: Crypto, sealer: Sealer, plan: Plan, la_ids: dict[str, int], now: datetime
    ) -> None:
        self.crypto = crypto
        self.sealer = sealer
        self.plan = plan
        self.now = now
        self.la_by_index = np.asarray([la_ids[la.code] for la in plan.las], dtype=np.int32)
        vocab = vocabulary()
        index = crypto.index
        # Blind indexes of vocabulary values: computed once per value, not once per row.
        self.first_name_bidx = np.asarray([index.name(v) for v in vocab.first_names], "S16")
        self.surname_bidx = np.asarray([index.name(v) for v in vocab.surnames], "S16")
        self.phonetic_bidx = np.asarray([index.phonetic(v) for v in vocab.surnames], "S16")
        self._dates: dict[int, tuple[str, bytes]] = {}

    def _iso_dates(self, day_numbers: npt.NDArray[np.int32]) -> tuple[list[str], S16]:
        uniques, inverse = np.unique(day_numbers, return_inverse=True)
        texts, digests = [], []
        for d in uniques.tolist():
            known = self._dates.get(d)
            if known is None:
                iso = date.fromordinal(_EPOCH_ORDINAL + d).isoformat()
                known = self._dates[d] = (iso, self.crypto.index.date(iso))
            texts.append(known[0])
            digests.append(known[1])
        picks = inverse.ravel().tolist()
        return [texts[i] for i in picks], np.asarray(digests, "S16")[inverse.ravel()]

    @staticmethod
    def _addresses(t: ChunkTables) -> list[str]:
        # json.dumps(address, sort_keys=True) as the app writes it, once per household.
        h = t.households
        return [
            f'{{"line1": {json.dumps(line1)}, "line2": null, "postcode": "{code}", '
            f'"town": {json.dumps(town)}}}'
            for line1, town, code in zip(
                h["address_line1"].to_pylist(),
                h["town"].to_pylist(),
                h["postcode"].to_pylist(),
                strict=True,
            )
        ]

    def children(self, t: ChunkTables, data: ChunkData) -> Columns:
        cipher = self.crypto.cipher
        vocab = vocabulary()
        given = [vocab.first_names[i] for i in data.child_given.tolist()]
        family = [vocab.surnames[i] for i in data.child_family.tolist()]
        dob, dob_bidx = self._iso_dates(data.child_dob)
        addresses = self._addresses(t)
        household = data.child_household.tolist()
        postcode_bidx = np.asarray(
            [self.crypto.index.postcode(p) for p in t.households["postcode"].to_pylist()], "S16"
        )
        day = start_of_day(self.now)
        batch = pgcopy.Batch(
            rows=data.children,
            # The day only, as the registry stores it (``kit.clock.start_of_day``).
            constants={"archived_at": None, "created_at": day, "updated_at": day},
            fixed={
                "id": ("char13", np.asarray(t.children["child_id"].to_pylist(), "S13"), None),
                "local_authority_id": ("int4", self.la_by_index[data.child_la], None),
                "given_name_bidx": ("bytes16", self.first_name_bidx[data.child_given], None),
                "family_name_bidx": ("bytes16", self.surname_bidx[data.child_family], None),
                "family_name_phonetic_bidx": (
                    "bytes16",
                    self.phonetic_bidx[data.child_family],
                    None,
                ),
                "date_of_birth_bidx": ("bytes16", dob_bidx, None),
                "postcode_bidx": ("bytes16", postcode_bidx[data.child_household], None),
            },
            choices={"gender": (data.child_sex, GENDERS)},
            variable={
                "given_name_enc": cipher.encrypt_many(given, "children.given_name"),
                "family_name_enc": cipher.encrypt_many(family, "children.family_name"),
                "date_of_birth_enc": cipher.encrypt_many(dob, "children.date_of_birth"),
                "address_enc": cipher.encrypt_many(
                    [addresses[h] for h in household], "children.address"
                ),
                # Sealed as ``SealedFlag`` seals them: every row a fresh ciphertext.
                "shielded": self.sealer.flags(data.child_shielded.tolist(), "children.shielded"),
                "household_shielded": self.sealer.flags(
                    household_shielded(data).tolist(), "children.household_shielded"
                ),
            },
        )
        return Columns(Child.__table__, batch)  # type: ignore[arg-type]

    def carers(self, t: ChunkTables, data: ChunkData) -> Columns:
        c = t.carers
        cipher = self.crypto.cipher
        email = c["email"].to_pylist()
        present = [i for i, e in enumerate(email) if e is not None]
        sealed = cipher.encrypt_many([email[i] for i in present], "carers.email")
        email_enc: list[bytes | None] = [None] * c.num_rows
        for i, blob in zip(present, sealed, strict=True):
            email_enc[i] = blob
        addresses = self._addresses(t)
        batch = pgcopy.Batch(
            rows=c.num_rows,
            fixed={"id": ("int4", data.carer_id, None)},
            variable={
                "given_name_enc": cipher.encrypt_many(
                    c["given_name"].to_pylist(), "carers.given_name"
                ),
                "family_name_enc": cipher.encrypt_many(
                    c["family_name"].to_pylist(), "carers.family_name"
                ),
                "phone_enc": cipher.encrypt_many(c["phone"].to_pylist(), "carers.phone"),
                "email_enc": email_enc,
                "address_enc": cipher.encrypt_many(
                    [addresses[h] for h in data.carer_household.tolist()], "carers.address"
                ),
            },
        )
        return Columns(Carer.__table__, batch)  # type: ignore[arg-type]

    def _sealed_ids(self, t: ChunkTables, column: str) -> npt.NDArray[np.bytes_]:
        """Each child's id sealed for ``column``, once per child (the app's ``SealedRef``)."""
        tokens = [self.sealer.ref(i, column) for i in t.children["child_id"].to_pylist()]
        if any(len(token) != SEALED_ID_BYTES for token in tokens):
            raise ValueError("a child id is not 13 characters long")
        return np.asarray(tokens, f"S{SEALED_ID_BYTES}")

    def child_carers(self, t: ChunkTables, data: ChunkData) -> Columns:
        ids = self._sealed_ids(t, "child_carers.child_id")
        batch = pgcopy.Batch(
            rows=len(data.link_child),
            fixed={
                "child_id": ("sealed_id", ids[data.link_child], None),
                "carer_id": ("int4", data.carer_id[data.link_carer], None),
                "parental_responsibility": ("bool", data.link_responsibility, None),
            },
            choices={"relationship": (data.link_relationship, RELATIONSHIPS)},
        )
        return Columns(ChildCarer.__table__, batch)  # type: ignore[arg-type]

    def involvements(self, t: ChunkTables, data: ChunkData) -> Columns:
        ids = self._sealed_ids(t, "involvements.child_id")
        staff = data.involvement_practitioner
        batch = pgcopy.Batch(
            rows=len(data.involvement_id),
            # A trusted feed's involvements arrive confirmed, by the feed (no person), as from
            # the day each started: the feed is the record of that work, not a new claim.
            constants={"ended_on": None, "created_at": self.now, "confirmed_by": None},
            fixed={
                "id": ("int4", data.involvement_id, None),
                "child_id": ("sealed_id", ids[data.involvement_child], None),
                "organisation_id": ("int4", data.involvement_org, None),
                "practitioner_id": ("int4", staff, staff == 0),
                "started_on": ("date", data.involvement_started, None),
                "confirmed_at": ("midnight", data.involvement_started, None),
                "is_lead_professional": ("bool", data.involvement_lead, None),
                "caf_assessment_on": ("date", data.involvement_caf, data.involvement_caf < 0),
                "sensitive": ("bool", data.involvement_sensitive, None),
                "consent_recorded": ("bool", data.involvement_sensitive, None),
            },
        )
        return Columns(Involvement.__table__, batch)  # type: ignore[arg-type]

    def organisations(self, orgs: pa.Table) -> Columns:
        batch = pgcopy.Batch(
            rows=orgs.num_rows,
            fixed={
                "id": ("int4", orgs["organisation_id"].to_numpy(), None),
                "local_authority_id": ("int4", self._la_ids(orgs["local_authority"]), None),
            },
            variable={
                "name": orgs["name"].to_pylist(),
                "kind": orgs["kind"].to_pylist(),
                "phone": orgs["phone"].to_pylist(),
            },
        )
        return Columns(Organisation.__table__, batch)  # type: ignore[arg-type]

    def _la_ids(self, codes: pa.ChunkedArray) -> npt.NDArray[np.int32]:
        by_code = {la.code: self.la_by_index[la.index] for la in self.plan.las}
        return np.asarray([by_code[c] for c in codes.to_pylist()], dtype=np.int32)

    def practitioners(self, staff: pa.Table) -> Columns:
        cipher = self.crypto.cipher
        n = staff.num_rows
        # Bulk accounts cannot log in: the personas get real credentials at the end of a run.
        totp = [pyotp.random_base32() for _ in range(n)]
        batch = pgcopy.Batch(
            rows=n,
            constants={
                "authz_version": 1,
                "totp_last_step": None,
                "password_hash": NO_PASSWORD,
                "status": "active",
                "role_pending": False,
                # Existing staff, not accounts made today: old enough to approve an export.
                "created_at": self.now - STAFF_TENURE,
            },
            fixed={
                "id": ("int4", staff["practitioner_id"].to_numpy(), None),
                "organisation_id": ("int4", staff["organisation_id"].to_numpy(), None),
                "local_authority_id": ("int4", self._la_ids(staff["local_authority"]), None),
            },
            variable={
                "username": staff["username"].to_pylist(),
                "role": staff["role"].to_pylist(),
                "display_name_enc": cipher.encrypt_many(
                    staff["display_name"].to_pylist(), "practitioners.display_name"
                ),
                "email_enc": cipher.encrypt_many(staff["email"].to_pylist(), "practitioners.email"),
                "totp_secret_enc": cipher.encrypt_many(totp, "practitioners.totp_secret"),
                # The family name's blind index, for spotting a look at a relative's child.
                "family_name_bidx": [
                    self.crypto.index.name(name.rsplit(" ", 1)[-1])
                    for name in staff["display_name"].to_pylist()
                ],
            },
        )
        return Columns(Practitioner.__table__, batch)  # type: ignore[arg-type]


@dataclass
class Columns:
    """A batch of rows bound for one registry table."""

    table: Table
    batch: pgcopy.Batch

    @property
    def rows(self) -> int:
        return self.batch.rows

    def records(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts of Python values (for SQLAlchemy inserts)."""
        b = self.batch
        cols: dict[str, list[Any]] = {}
        for name, (kind, values, mask) in b.fixed.items():
            cols[name] = _python_values(kind, values, mask)
        for name, (codes, options) in b.choices.items():
            cols[name] = [options[c] for c in codes.tolist()]
        for name, variable in b.variable.items():
            cols[name] = list(variable)
        names = list(cols)
        for row in zip(*cols.values(), strict=True):
            record = dict(zip(names, row, strict=True))
            record.update(b.constants)
            yield record


def household_shielded(data: ChunkData) -> npt.NDArray[np.bool_]:
    """Whether each child lives with another shielded child (the registry's
    ``Child.household_shielded``): a household's carers are its own, so a shared address is
    also every shared carer."""
    shielded = np.asarray(data.child_shielded, bool)
    per_household = np.bincount(data.child_household, weights=shielded)
    return np.asarray(per_household[data.child_household] - shielded > 0, bool)


def _python_values(
    kind: str, values: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None
) -> list[Any]:
    if kind in ("bytes16", "sealed_id"):
        # Raw bytes: NumPy's "S" type would drop trailing zero bytes.
        width = values.dtype.itemsize
        raw = np.ascontiguousarray(values).view(f"V{width}").tobytes()
        out: list[Any] = [raw[i * width : (i + 1) * width] for i in range(len(values))]
    elif kind == "char13":
        out = [v.decode("ascii") for v in values.tolist()]
    elif kind == "date":
        out = [date.fromordinal(_EPOCH_ORDINAL + int(d)) for d in values.tolist()]
    elif kind == "midnight":
        out = [
            datetime.combine(date.fromordinal(_EPOCH_ORDINAL + int(d)), time(0), UTC)
            for d in values.tolist()
        ]
    elif kind == "bool":
        out = [bool(v) for v in values.tolist()]
    else:
        out = [int(v) for v in values.tolist()]
    if mask is not None:
        out = [None if m else v for v, m in zip(out, mask.tolist(), strict=True)]
    return out


def copy_into(conn: Any, columns: Columns) -> None:
    """COPY one table's rows over a psycopg connection, in binary."""
    body = pgcopy.encode(columns.batch)
    names = ", ".join(columns.batch.names)
    statement = f"COPY {columns.table.name} ({names}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(pgcopy.HEADER)
        view = memoryview(body)
        step = 8 << 20
        for start in range(0, len(body), step):
            copy.write(view[start : start + step])
        copy.write(pgcopy.TRAILER)


def insert_into(conn: Connection, columns: Columns) -> None:
    """Insert one table's rows through SQLAlchemy Core (SQLite, or any other backend), as
    stored: the encoder seals what is sealed itself, as it does for COPY."""
    target = stored_table(columns.table)
    batch: list[dict[str, Any]] = []
    for record in columns.records():
        batch.append(record)
        if len(batch) >= 5000:
            conn.execute(target.insert(), batch)
            batch = []
    if batch:
        conn.execute(target.insert(), batch)


def deferred_ddl(conn: Connection) -> dict[str, list[str]]:
    """Keys, foreign keys and indexes of the bulk tables (PostgreSQL), to drop before a load.

    Building them once over the loaded rows is much faster than maintaining them row by row.
    Returns the statements to drop them (foreign keys first) and to recreate them (keys first).
    """
    constraints = conn.execute(
        text(
            """
            SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
            FROM pg_constraint c
            WHERE c.contype IN ('f', 'p')
              AND (c.conrelid::regclass::text = ANY(:tables)
                   OR (c.contype = 'f' AND c.confrelid::regclass::text = ANY(:tables)))
            ORDER BY c.conname
            """
        ),
        {"tables": list(BULK_TABLES)},
    ).all()
    indexes = conn.execute(
        text(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = ANY(:tables) AND i.schemaname = current_schema()
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            ORDER BY i.indexname
            """
        ),
        {"tables": list(BULK_TABLES)},
    ).all()
    keys = [(t, n, d) for t, n, d, kind in constraints if kind == "p"]
    foreign = [(t, n, d) for t, n, d, kind in constraints if kind == "f"]
    drop = [f"ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}" for t, n, _ in foreign + keys]
    drop += [f"DROP INDEX IF EXISTS {name}" for name, _ in indexes]
    create = [f"ALTER TABLE {t} ADD CONSTRAINT {n} {d}" for t, n, d in keys]
    create += [definition for _, definition in indexes]
    create += [f"ALTER TABLE {t} ADD CONSTRAINT {n} {d}" for t, n, d in foreign]
    return {"drop": drop, "create": create}
