"""Run a generation: chunks over worker processes, into a database or Parquet, then the side files.

The side files the load and security tests read are written to the data directory:
`children_sample.jsonl` (a per-LA sample of searchable children), `canaries.jsonl` (the
honeytoken children) and `personas.json` (accounts with working credentials, mode 0600). Every
Parquet file and both JSONL files are byte-identical for the same options and shard; persona
credentials are fresh on every run, because a seed is not a secret.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pyotp
from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.orm import Session

from reference_app.alerts.models import Canary
from reference_app.config import Settings
from reference_app.context import make_password_hasher
from reference_app.kit.crypto import Crypto
from reference_app.kit.db import is_sqlite, make_engine
from reference_app.kit.keys import Keyring
from reference_app.kit.migrate import upgrade
from reference_app.kit.progress import Progress
from reference_app.kit.sealing import Sealer, bind
from reference_app.localauthorities.models import LocalAuthority
from reference_app.localauthorities.service import seed_local_authorities
from synthetic_data import load
from synthetic_data.plan import Chunk, Options, Plan, build_plan
from synthetic_data.population import generate_chunk
from synthetic_data.tables import (
    ChunkTables,
    chunk_tables,
    organisations_table,
    practitioners_table,
)

SAMPLE_FIELDS = (
    "child_id",
    "family_name",
    "given_name",
    "date_of_birth",
    "postcode",
    "local_authority",
    "shielded",
)
PARQUET_TABLES = ("children", "carers", "child_carers", "involvements")
_ADVISORY_LOCK = 0x5EED_C0DE


class GenerationError(Exception):
    """The run cannot go ahead (a database holding other data, a bad shard, missing keys)."""


@dataclass(frozen=True)
class Argon2Settings:
    """The instance's Argon2 cost, for persona passwords (picklable, unlike the hasher)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2

    @classmethod
    def of(cls, settings: Settings) -> Argon2Settings:
        return cls(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )


@dataclass
class RunConfig:
    options: Options
    data_dir: Path
    database_url: str | None = None
    out_dir: Path | None = None
    keyring: Keyring | None = None
    argon2: Argon2Settings = field(default_factory=Argon2Settings)
    shard: int = 0
    shards: int = 1
    workers: int = 1
    progress: bool = False


@dataclass
class ChunkResult:
    index: int
    children: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    skipped: bool = False
    sample: list[dict[str, Any]] = field(default_factory=list)
    canaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunReport:
    fingerprint: str
    chunks: int
    skipped: int
    children: int
    rows: dict[str, int]
    seconds: float
    generate_seconds: float
    index_seconds: float
    index_steps: list[dict[str, Any]]
    indexed: bool
    personas: int
    sample: int
    canaries: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- worker side ------------------------------------------------------------------------------


@dataclass
class _WorkerState:
    config: RunConfig
    plan: Plan
    engine: Engine | None = None
    encoder: load.Encoder | None = None
    done: frozenset[int] = frozenset()


_STATE: _WorkerState | None = None


def _keyring_for_worker(keyring: Keyring | None) -> Keyring | None:
    # Signing keys do not pickle and are not needed to load data: pass only the field keys.
    if keyring is None:
        return None
    return Keyring(
        field_keys=keyring.field_keys,
        field_key_current=keyring.field_key_current,
        blind_index_key=keyring.blind_index_key,
        token_secret=b"",
        audit_signing_keys={},
        audit_key_current="",
    )


def _init_worker(config: RunConfig, la_ids: dict[str, int], done: frozenset[int]) -> None:
    global _STATE
    plan = build_plan(config.options)
    state = _WorkerState(config, plan, done=done)
    if config.database_url is not None:
        assert config.keyring is not None
        sealer = Sealer.of(config.keyring)
        state.engine = make_engine(config.database_url, pool_size=1)
        bind(state.engine, sealer)
        state.encoder = load.Encoder(
            Crypto(config.keyring), sealer, plan, la_ids, datetime.now(UTC)
        )
    _STATE = state


def _sample_rows(children: pa.Table, positions: list[int]) -> list[dict[str, Any]]:
    if not positions:
        return []
    picked = children.take(pa.array(positions)).select(list(SAMPLE_FIELDS))
    rows: list[dict[str, Any]] = picked.to_pylist()
    for row in rows:
        row["date_of_birth"] = row["date_of_birth"].isoformat()
    return rows


def _run_chunk(index: int) -> ChunkResult:
    state = _STATE
    assert state is not None
    plan, config = state.plan, state.config
    chunk = plan.chunks[index]
    data = generate_chunk(plan, chunk)
    tables = chunk_tables(plan, data)
    result = ChunkResult(index=index, children=chunk.count)
    result.sample = _sample_rows(tables.children, data.sample.tolist())
    # A shielded child's sibling is withheld and unfindable by postcode too: users of the
    # sample (the load and security harnesses) must know which children those are.
    household = load.household_shielded(data)
    for row, position in zip(result.sample, data.sample.tolist(), strict=True):
        row["household_shielded"] = bool(household[position])
    if chunk.canary:
        result.canaries = _sample_rows(tables.children, list(range(chunk.count)))
    if index in state.done:
        result.skipped = True
        return result
    if config.out_dir is not None:
        result.rows = _write_parquet(config.out_dir, chunk, tables, _carried(plan, chunk))
    else:
        result.rows = _load_database(state, chunk, data, tables)
    return result


def _carried(plan: Plan, chunk: Chunk) -> list[tuple[pa.Table, pa.Table]]:
    """The organisations and practitioners a chunk carries (its LA's, and the national ones)."""
    if not chunk.carrier:
        return []
    la = plan.las[chunk.la]
    carried = [(organisations_table(plan, la), practitioners_table(plan, la))]
    if chunk.la == plan.pilot:
        carried.append((organisations_table(plan, None), practitioners_table(plan, None)))
    return carried


def _write_parquet(
    out: Path, chunk: Chunk, tables: ChunkTables, extra: list[tuple[pa.Table, pa.Table]]
) -> dict[str, int]:
    parts: dict[str, pa.Table] = {name: getattr(tables, name) for name in PARQUET_TABLES}
    if extra:
        parts["organisations"] = pa.concat_tables([orgs for orgs, _ in extra])
        parts["practitioners"] = pa.concat_tables([staff for _, staff in extra])
    for name, table in parts.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"part-{chunk.index:05d}.parquet"
        partial = folder / f".part-{chunk.index:05d}.parquet.partial"
        pq.write_table(table, partial, compression="snappy", write_statistics=True)
        partial.replace(final)
    marker = out / "_chunks"
    marker.mkdir(exist_ok=True)
    (marker / f"chunk-{chunk.index:05d}.done").write_text("", encoding="utf-8")
    return {name: table.num_rows for name, table in parts.items()}


def _load_database(
    state: _WorkerState, chunk: Chunk, data: Any, tables: ChunkTables
) -> dict[str, int]:
    assert state.engine is not None
    assert state.encoder is not None
    encoder = state.encoder
    batches = [
        encoder.children(tables, data),
        encoder.carers(tables, data),
        encoder.child_carers(tables, data),
        encoder.involvements(tables, data),
    ]
    fingerprint = state.config.options.fingerprint()
    sqlite = is_sqlite(str(state.engine.url))
    with state.engine.begin() as conn:
        claimed = conn.execute(
            text(
                "INSERT INTO synthetic_load_chunks (fingerprint, chunk, children, loaded_at) "
                "VALUES (:f, :c, :n, :t) ON CONFLICT DO NOTHING"
            ),
            {"f": fingerprint, "c": chunk.index, "n": chunk.count, "t": _now()},
        ).rowcount
        if not claimed:
            return {}
        _write(conn, batches, sqlite=sqlite)
        if chunk.canary:
            # The registry raises a canary_access alert on any view of these children.
            conn.execute(
                insert(Canary),
                [
                    {"child_id": child_id, "registered_at": encoder.now}
                    for child_id in tables.children["child_id"].to_pylist()
                ],
            )
    counts: dict[str, int] = {}
    for columns in batches:
        counts[columns.table.name] = counts.get(columns.table.name, 0) + columns.rows
    return counts


def _write(conn: Connection, batches: list[load.Columns], *, sqlite: bool) -> None:
    for columns in batches:
        if sqlite:
            load.insert_into(conn, columns)
        else:
            load.copy_into(conn.connection.driver_connection, columns)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _hash(args: tuple[Argon2Settings, str]) -> str:
    cost, password = args
    return make_password_hasher(cost.time_cost, cost.memory_kib, cost.parallelism).hash(password)


# --- main side --------------------------------------------------------------------------------


@contextmanager
def _pool(
    config: RunConfig, la_ids: dict[str, int], done: frozenset[int]
) -> Iterator[Callable[..., Iterator[Any]]]:
    global _STATE
    if config.workers <= 1:
        _init_worker(config, la_ids, done)
        try:
            yield lambda fn, items: map(fn, items)
        finally:
            if _STATE is not None and _STATE.engine is not None:
                _STATE.engine.dispose()
            _STATE = None
        return
    worker_config = RunConfig(**{**config.__dict__, "keyring": _keyring_for_worker(config.keyring)})
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        config.workers, initializer=_init_worker, initargs=(worker_config, la_ids, done)
    ) as pool:
        yield lambda fn, items: pool.imap(fn, items)


def _prepare_database(
    config: RunConfig, plan: Plan, engine: Engine
) -> tuple[dict[str, int], frozenset[int], dict[str, int]]:
    """Migrate, claim or join the run, and on a fresh load drop deferred indexes and load the
    organisations and practitioners (every chunk's involvements refer to them)."""
    options = config.options
    fingerprint = options.fingerprint()
    upgrade(engine)
    sqlite = is_sqlite(str(engine.url))
    with engine.begin() as conn:
        for statement in load.LEDGER_DDL:
            conn.execute(text(statement))
        with Session(bind=conn) as db:
            seed_local_authorities(db)
            db.flush()
            la_ids = {la.ons_code: la.id for la in db.scalars(select(LocalAuthority))}
    carried: dict[str, int] = {}
    with engine.begin() as conn:
        if not sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        run = conn.execute(text("SELECT fingerprint FROM synthetic_load_runs")).scalars().all()
        if run and fingerprint not in run:
            raise GenerationError(
                f"the database holds a generated population with other options "
                f"(run {run[0]}); load into a fresh database"
            )
        if not run:
            held = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM children) + (SELECT count(*) FROM organisations)"
                    " + (SELECT count(*) FROM practitioners)"
                )
            ).scalar_one()
            if held:
                raise GenerationError(
                    "the database already holds children, organisations or practitioners; "
                    "load a generated population into a fresh database"
                )
            ddl: dict[str, list[str]] = (
                {"drop": [], "create": []} if sqlite else load.deferred_ddl(conn)
            )
            conn.execute(
                text(
                    "INSERT INTO synthetic_load_runs (fingerprint, options, chunks, deferred_ddl, "
                    "started_at) VALUES (:f, :o, :c, :d, :t)"
                ),
                {
                    "f": fingerprint,
                    "o": json.dumps(_options_dict(options), sort_keys=True),
                    "c": len(plan.chunks),
                    "d": json.dumps(ddl),
                    "t": _now(),
                },
            )
            for statement in ddl["drop"]:
                conn.execute(text(statement))
            assert config.keyring is not None
            encoder = load.Encoder(
                Crypto(config.keyring), Sealer.of(config.keyring), plan, la_ids, datetime.now(UTC)
            )
            for layout in [*plan.las, None]:
                orgs = organisations_table(plan, layout)
                staff = practitioners_table(plan, layout)
                _write(
                    conn,
                    [encoder.organisations(orgs), encoder.practitioners(staff)],
                    sqlite=sqlite,
                )
                carried["organisations"] = carried.get("organisations", 0) + orgs.num_rows
                carried["practitioners"] = carried.get("practitioners", 0) + staff.num_rows
        done = (
            conn.execute(
                text("SELECT chunk FROM synthetic_load_chunks WHERE fingerprint = :f"),
                {"f": fingerprint},
            )
            .scalars()
            .all()
        )
    return la_ids, frozenset(int(c) for c in done), carried


def _finish_database(
    config: RunConfig,
    plan: Plan,
    engine: Engine,
    steps: list[dict[str, Any]],
    say: Callable[[str], None] = lambda _text: None,
) -> bool:
    """Once every chunk of the population is in, rebuild indexes and keys and gather statistics.

    Appends each statement and its duration to ``steps``, and tells ``say`` of each as it starts
    and ends; returns whether the population is indexed (False while other shards are still
    loading).
    """
    fingerprint = config.options.fingerprint()
    sqlite = is_sqlite(str(engine.url))
    with engine.begin() as conn:
        if not sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        loaded = conn.execute(
            text("SELECT count(*) FROM synthetic_load_chunks WHERE fingerprint = :f"),
            {"f": fingerprint},
        ).scalar_one()
        ddl_text, indexed_at = conn.execute(
            text("SELECT deferred_ddl, indexed_at FROM synthetic_load_runs WHERE fingerprint = :f"),
            {"f": fingerprint},
        ).one()
        if loaded < len(plan.chunks) or indexed_at is not None:
            return indexed_at is not None
        if not sqlite:
            conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
            conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 2"))
        statements = json.loads(ddl_text)["create"]
        for number, statement in enumerate(statements, 1):
            shown = " ".join(statement.split())[:90]
            say(f"[{number}/{len(statements)}] {shown} ...")
            began = time.perf_counter()
            conn.execute(text(statement))
            seconds = round(time.perf_counter() - began, 2)
            steps.append({"statement": statement, "seconds": seconds})
            say(f"[{number}/{len(statements)}] done in {seconds:.1f} s")
        if not sqlite:
            # The app's own inserts carry on after the loaded ids.
            for table in ("carers", "involvements", "organisations", "practitioners"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"
                    )
                )
        conn.execute(
            text("UPDATE synthetic_load_runs SET indexed_at = :t WHERE fingerprint = :f"),
            {"t": _now(), "f": fingerprint},
        )
    say("ANALYZE (planner statistics) ...")
    began = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    steps.append({"statement": "ANALYZE", "seconds": round(time.perf_counter() - began, 2)})
    return True


def _options_dict(options: Options) -> dict[str, Any]:
    data = asdict(options)
    data["as_of"] = options.as_of.isoformat()
    return data


def new_credentials(count: int) -> list[tuple[str, str]]:
    """Fresh (password, TOTP secret) pairs for accounts the tests and load tests log in as."""
    return [(secrets.token_urlsafe(18), pyotp.random_base32()) for _ in range(count)]


def store_credentials(
    conn: Connection,
    crypto: Crypto,
    practitioner_ids: list[int],
    credentials: list[tuple[str, str]],
    hashes: list[str],
) -> None:
    """Give practitioners their password hashes and encrypted TOTP secrets, no code yet used."""
    conn.execute(
        text(
            "UPDATE practitioners SET password_hash = :h, totp_secret_enc = :t, "
            "totp_last_step = NULL WHERE id = :i"
        ),
        [
            {"h": hashed, "t": crypto.cipher.encrypt(totp, "practitioners.totp_secret"), "i": pid}
            for pid, (_, totp), hashed in zip(practitioner_ids, credentials, hashes, strict=True)
        ],
    )


def _personas(
    config: RunConfig,
    plan: Plan,
    chunks: set[int],
    engine: Engine | None,
    hash_map: Callable[..., Iterator[Any]],
) -> list[dict[str, str]]:
    """Give this shard's persona accounts fresh credentials and describe them for the tests."""
    carrier = {c.la: c.index for c in plan.chunks if c.carrier}
    mine = [p for p in plan.personas if carrier.get(p.la) in chunks]
    if not mine:
        return []
    national = {pid for block in plan.national_practitioners.values() for pid in block.ids()}
    described: dict[int, dict[str, str]] = {}
    for scope in {None if p.practitioner_id in national else p.la for p in mine}:
        layout = None if scope is None else plan.las[scope]
        orgs = {
            o["organisation_id"]: o["name"] for o in organisations_table(plan, layout).to_pylist()
        }
        for row in practitioners_table(plan, layout).to_pylist():
            described[row["practitioner_id"]] = {
                "username": row["username"],
                "role": row["role"],
                "organisation": orgs[row["organisation_id"]],
                "local_authority": row["local_authority"],
            }
    credentials = new_credentials(len(mine))
    if engine is not None and config.keyring is not None:
        hashes = list(hash_map(_hash, [(config.argon2, pw) for pw, _ in credentials]))
        with engine.begin() as conn:
            store_credentials(
                conn,
                Crypto(config.keyring),
                [p.practitioner_id for p in mine],
                credentials,
                hashes,
            )
    out = []
    for persona, (password, totp) in zip(mine, credentials, strict=True):
        info = described[persona.practitioner_id]
        out.append(
            {
                "username": info["username"],
                "password": password,
                "totp_secret": totp,
                "role": info["role"],
                "organisation": info["organisation"],
                "local_authority": info["local_authority"],
            }
        )
    return out


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    partial.replace(path)


def write_personas(path: Path, personas: list[dict[str, str]]) -> None:
    """Write the personas file the load and security tests read (owner-readable only)."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(personas, f, indent=2)
    partial.replace(path)


def run(config: RunConfig) -> RunReport:
    """Generate the shard's chunks into the target, then write the side files."""
    started = time.perf_counter()
    if (config.database_url is None) == (config.out_dir is None):
        raise GenerationError("give exactly one target: a database URL or an output directory")
    if config.database_url is not None and config.keyring is None:
        raise GenerationError("loading into a database needs the instance's keys")
    plan = build_plan(config.options)
    chunks = plan.shard(config.shard, config.shards)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database_url) if config.database_url else None
    if engine is not None:
        assert config.keyring is not None
        # The instance's keys, as the registry holds them: the upgrade seals existing links.
        bind(engine, Sealer.of(config.keyring))
    try:
        la_ids: dict[str, int] = {}
        done: frozenset[int] = frozenset()
        rows: dict[str, int] = {}
        if engine is not None:
            la_ids, done, rows = _prepare_database(config, plan, engine)
        elif config.out_dir is not None:
            marker = config.out_dir / "_chunks"
            done = (
                frozenset(int(p.stem.split("-")[1]) for p in marker.glob("chunk-*.done"))
                if marker.exists()
                else frozenset()
            )
        results: dict[int, ChunkResult] = {}
        total = sum(c.count for c in chunks)
        bar = Progress(
            f"generate shard {config.shard}/{config.shards}",
            total,
            "children",
            enabled=config.progress,
        )
        with _pool(config, la_ids, done) as pmap:
            # Largest chunks first keeps the workers evenly busy to the end.
            order = sorted(chunks, key=lambda c: (-c.count, c.index))
            for result in pmap(_run_chunk, [c.index for c in order]):
                results[result.index] = result
                bar.update(result.children)
            bar.close()
            generated = time.perf_counter()
            indexed = False
            index_steps: list[dict[str, Any]] = []
            if engine is not None:
                indexes = Progress("indexes", None, "statements", enabled=config.progress)
                indexed = _finish_database(config, plan, engine, index_steps, indexes.note)
            elif config.out_dir is not None:
                _write_manifest(config, plan, chunks)
                indexed = True
            index_done = time.perf_counter()
            if config.progress:
                print("personas: making the accounts the harnesses log in as", file=sys.stderr)
            personas = _personas(config, plan, {c.index for c in chunks}, engine, pmap)
        sample = [row for i in sorted(results) for row in results[i].sample]
        canaries = [row for i in sorted(results) for row in results[i].canaries]
        _write_jsonl(config.data_dir / "children_sample.jsonl", sample)
        _write_jsonl(config.data_dir / "canaries.jsonl", canaries)
        write_personas(config.data_dir / "personas.json", personas)
        for result in results.values():
            for name, count in result.rows.items():
                rows[name] = rows.get(name, 0) + count
        return RunReport(
            fingerprint=config.options.fingerprint(),
            chunks=len(chunks),
            skipped=sum(1 for r in results.values() if r.skipped),
            children=sum(r.children for r in results.values() if not r.skipped),
            rows=rows,
            seconds=time.perf_counter() - started,
            generate_seconds=generated - started,
            index_seconds=index_done - generated,
            index_steps=index_steps,
            indexed=indexed,
            personas=len(personas),
            sample=len(sample),
            canaries=len(canaries),
        )
    finally:
        if engine is not None:
            engine.dispose()


def _write_manifest(config: RunConfig, plan: Plan, chunks: tuple[Chunk, ...]) -> None:
    assert config.out_dir is not None
    manifest = {
        "fingerprint": config.options.fingerprint(),
        "options": _options_dict(config.options),
        "shard": [config.shard, config.shards],
        "chunks": [c.index for c in chunks],
        "tables": [*PARQUET_TABLES, "organisations", "practitioners"],
    }
    name = (
        "manifest.json"
        if config.shards == 1
        else f"manifest-{config.shard}-of-{config.shards}.json"
    )
    (config.out_dir / name).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
