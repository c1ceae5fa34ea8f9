"""A generated population in the registry's database: encrypted, indexed, searchable, resumable."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from reference_app.app import create_app
from reference_app.carers.models import ChildCarer
from reference_app.children.models import Child
from reference_app.context import AppContext
from reference_app.kit.keys import Keyring
from reference_app.kit.sealing import Sealer, bind, stored_table
from reference_app.services.models import Involvement
from synthetic_data import load
from synthetic_data.plan import Options, build_plan
from synthetic_data.population import ChunkData, generate_chunk
from synthetic_data.runner import GenerationError
from synthetic_data.tables import chunk_tables, organisations_table, practitioners_table
from tests.fixtures.database import Database, make_context, new_database
from tests.fixtures.population import Generated, generate_into, persona_headers

CHILDREN = 3000


def expected_rows(**options: Any) -> dict[str, int]:
    """Row counts computed from the generator alone, without any database."""
    plan = build_plan(Options(**options))
    counts = dict.fromkeys(
        ("children", "carers", "child_carers", "involvements", "organisations", "practitioners"), 0
    )
    for chunk in plan.chunks:
        tables = chunk_tables(plan, generate_chunk(plan, chunk))
        for name in ("children", "carers", "child_carers", "involvements"):
            counts[name] += getattr(tables, name).num_rows
    for la in [*plan.las, None]:
        counts["organisations"] += organisations_table(plan, la).num_rows
        counts["practitioners"] += practitioners_table(plan, la).num_rows
    return counts


def table_counts(database: Database) -> dict[str, int]:
    engine = create_engine(database.owner_url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in (
                    "children",
                    "carers",
                    "child_carers",
                    "involvements",
                    "organisations",
                    "practitioners",
                )
            }
    finally:
        engine.dispose()


@pytest.fixture
def loaded(
    fresh_database: Database, keyring: Keyring, tmp_path: Path
) -> Iterator[tuple[Generated, AppContext]]:
    generated = generate_into(fresh_database, keyring, tmp_path, children=CHILDREN, seed=3)
    ctx = make_context(fresh_database, keyring)
    yield generated, ctx
    ctx.engine.dispose()


def test_every_row_arrives(loaded: tuple[Generated, AppContext], fresh_database: Database) -> None:
    generated, _ = loaded
    counts = table_counts(fresh_database)
    assert counts == expected_rows(children=CHILDREN, seed=3, personas_per_role=1)
    assert generated.report.rows == counts
    assert generated.report.indexed


def test_the_feeds_involvements_arrive_confirmed_from_the_day_they_started(
    loaded: tuple[Generated, AppContext],
) -> None:
    """A trusted feed's involvements need no LA confirmation: confirmed, by no person, as of
    the start of the day each began (so the detector takes them as settled)."""
    _, ctx = loaded
    query = select(Involvement.started_on, Involvement.confirmed_at, Involvement.confirmed_by)
    with ctx.sessions() as db:
        rows = db.execute(query).all()
    assert rows
    for started_on, confirmed_at, confirmed_by in rows:
        assert confirmed_by is None
        assert confirmed_at == dt.datetime.combine(started_on, dt.time(0), dt.UTC)


def test_stored_involvements_do_not_follow_the_children(
    loaded: tuple[Generated, AppContext], keyring: Keyring
) -> None:
    """Read as a copy of the database holds them: in id order, a child's involvements would
    follow each other if the rows were written in the children's order."""
    _, ctx = loaded
    stored = stored_table(Involvement.__table__)  # type: ignore[arg-type]
    with ctx.engine.connect() as conn:
        tokens = conn.execute(select(stored.c.child_id).order_by(stored.c.id)).scalars().all()
    sealer = Sealer.of(keyring)
    children = [sealer.open_ref(token, "involvements.child_id") for token in tokens]
    assert len(set(children)) > 1000
    neighbours = sum(a == b for a, b in itertools.pairwise(children))
    assert neighbours / len(children) < 0.05


def test_the_registry_finds_sampled_children_by_its_own_search(
    loaded: tuple[Generated, AppContext],
) -> None:
    generated, ctx = loaded
    assert len(generated.sample) >= 500
    with TestClient(create_app(ctx)) as client:
        auth = persona_headers(client, generated.persona("social_care_practitioner"))
        visible = [
            c for c in generated.sample if not c["shielded"] and not c["household_shielded"]
        ][:60]
        for child in visible:
            body = client.post(
                "/api/v1/children/search",
                json={k: child[k] for k in ("family_name", "given_name", "date_of_birth")},
                headers=auth,
            ).json()
            assert child["child_id"] in [r["child_id"] for r in body["results"]], child
        by_postcode = client.post(
            "/api/v1/children/search",
            json={"family_name": visible[0]["family_name"], "postcode": visible[0]["postcode"]},
            headers=auth,
        ).json()
        assert visible[0]["child_id"] in [r["child_id"] for r in by_postcode["results"]]
        record = client.get(
            f"/api/v1/children/{visible[0]['child_id']}",
            headers={**auth, "X-Access-Reason": "safeguarding"},
        )
        assert record.status_code == 200
        assert record.json()["given_name"] == visible[0]["given_name"]


def test_a_shielded_child_is_not_found_by_postcode(
    fresh_database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    generated = generate_into(fresh_database, keyring, tmp_path, children=40_000, seed=3)
    ctx = make_context(fresh_database, keyring)
    try:
        shielded = [c for c in generated.sample if c["shielded"]]
        assert shielded, "0.5 % of 15,000 sampled children are shielded"
        with TestClient(create_app(ctx)) as client:
            auth = persona_headers(client, generated.persona("education_practitioner"))
            child = shielded[0]
            by_postcode = client.post(
                "/api/v1/children/search",
                json={"family_name": child["family_name"], "postcode": child["postcode"]},
                headers=auth,
            ).json()
            assert child["child_id"] not in [r["child_id"] for r in by_postcode["results"]]
            by_name = client.post(
                "/api/v1/children/search",
                json={k: child[k] for k in ("family_name", "given_name", "date_of_birth")},
                headers=auth,
            ).json()
            assert child["child_id"] in [r["child_id"] for r in by_name["results"]]
    finally:
        ctx.engine.dispose()


def test_canaries_are_registered_and_a_view_of_one_alerts(
    loaded: tuple[Generated, AppContext], fresh_database: Database
) -> None:
    generated, ctx = loaded
    canaries = {c["child_id"] for c in generated.canaries}
    assert len(canaries) == 24
    assert not canaries & {c["child_id"] for c in generated.sample}
    engine = create_engine(fresh_database.owner_url)
    try:
        with engine.connect() as conn:
            held = set(conn.execute(text("SELECT id FROM children")).scalars())
            registered = set(conn.execute(text("SELECT child_id FROM canaries")).scalars())
    finally:
        engine.dispose()
    assert canaries <= held
    assert registered == canaries
    with TestClient(create_app(ctx)) as client:
        snooper = persona_headers(client, generated.persona("voluntary_practitioner"))
        canary = generated.canaries[0]
        opened = client.get(
            f"/api/v1/children/{canary['child_id']}",
            headers={**snooper, "X-Access-Reason": "safeguarding"},
        )
        assert opened.status_code == 200
        auditor = persona_headers(client, generated.persona("national_auditor"))
        alerts = client.get("/api/v1/alerts", headers=auditor).json()
    assert [a["kind"] for a in alerts if a["child_id"] == canary["child_id"]] == ["canary_access"]


def test_bulk_accounts_cannot_log_in_and_personas_can(
    loaded: tuple[Generated, AppContext],
) -> None:
    generated, ctx = loaded
    persona = generated.persona("health_practitioner")
    with TestClient(create_app(ctx)) as client:
        persona_headers(client, persona)
        # Another health practitioner of the same LA: loaded in bulk with no password.
        bulk = persona["username"].replace("-00001", "-00002")
        refused = client.post(
            "/api/v1/auth/login",
            json={"username": bulk, "password": "!no-password", "otp": "000000"},
        )
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_credentials"


def test_a_database_holding_other_data_is_refused(
    fresh_database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    generate_into(fresh_database, keyring, tmp_path, children=500, seed=3)
    with pytest.raises(GenerationError, match="other options"):
        generate_into(fresh_database, keyring, tmp_path, children=500, seed=4)


def test_an_interrupted_load_keeps_whole_chunks_and_a_rerun_completes_it(
    fresh_database: Database, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers = {"copy_into": load.copy_into, "insert_into": load.insert_into}
    calls = {"n": 0}

    def failing(name: str) -> Any:
        def write(conn: Any, columns: load.Columns) -> None:
            # The tenth chunk's involvements: its children, carers and links are written.
            if columns.table.name == "involvements":
                calls["n"] += 1
                if calls["n"] == 10:
                    raise RuntimeError("power cut")
            writers[name](conn, columns)

        return write

    for name in writers:
        monkeypatch.setattr(load, name, failing(name))
    with pytest.raises(RuntimeError, match="power cut"):
        generate_into(fresh_database, keyring, tmp_path, children=CHILDREN, seed=3)
    engine = create_engine(fresh_database.owner_url)
    bind(engine, Sealer.of(keyring))
    try:
        with engine.connect() as conn:
            ledger = conn.execute(text("SELECT sum(children) FROM synthetic_load_chunks")).scalar()
            ids = set(conn.execute(select(Child.id)).scalars())
            # Sealed references: no SQL can join them to the children, so compare the ids.
            linked = set(conn.execute(select(Involvement.child_id)).scalars())
            linked |= set(conn.execute(select(ChildCarer.child_id)).scalars())
    finally:
        engine.dispose()
    assert 0 < len(ids) < CHILDREN
    assert len(ids) == ledger  # whole chunks only: nothing of the interrupted one
    assert linked <= ids
    monkeypatch.undo()
    generated = generate_into(fresh_database, keyring, tmp_path, children=CHILDREN, seed=3)
    assert generated.report.skipped > 0
    assert table_counts(fresh_database) == expected_rows(
        children=CHILDREN, seed=3, personas_per_role=1
    )


def test_a_failure_before_the_first_chunk_leaves_the_database_as_it_was(
    fresh_database: Database, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(conn: Any, columns: load.Columns) -> None:
        if columns.table.name == "practitioners":
            raise RuntimeError("disk full")

    monkeypatch.setattr(load, "copy_into", refuse)
    monkeypatch.setattr(load, "insert_into", refuse)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_into(fresh_database, keyring, tmp_path, children=CHILDREN, seed=3)
    assert set(table_counts(fresh_database).values()) == {0}
    engine = create_engine(fresh_database.owner_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT count(*) FROM synthetic_load_runs")).scalar_one()
    finally:
        engine.dispose()
    assert runs == 0
    monkeypatch.undo()
    generated = generate_into(fresh_database, keyring, tmp_path, children=CHILDREN, seed=3)
    assert generated.report.skipped == 0
    assert generated.report.indexed


@pytest.mark.postgres
def test_postgres_indexes_and_keys_are_rebuilt_as_migrated(
    request: pytest.FixtureRequest, keyring: Keyring, tmp_path: Path
) -> None:
    # PostgreSQL only: SQLite keeps its indexes during the load.
    database, drop = new_database("postgresql", request, tmp_path)
    try:
        _check_rebuilt_indexes(database, keyring, tmp_path)
    finally:
        drop()


def _check_rebuilt_indexes(fresh_database: Database, keyring: Keyring, tmp_path: Path) -> None:
    query = text(
        "SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid::regclass::text = ANY(:t) UNION ALL "
        "SELECT indexdef FROM pg_indexes WHERE tablename = ANY(:t)"
    )
    tables = {"t": list(load.BULK_TABLES)}
    engine = create_engine(fresh_database.owner_url)
    try:
        with engine.connect() as conn:
            before = sorted(conn.execute(query, tables).scalars())
        generate_into(fresh_database, keyring, tmp_path, children=CHILDREN, seed=3)
        with engine.connect() as conn:
            after = sorted(conn.execute(query, tables).scalars())
            next_carer = conn.execute(text("SELECT nextval('carers_id_seq')")).scalar_one()
            top_carer = conn.execute(text("SELECT max(id) FROM carers")).scalar_one()
    finally:
        engine.dispose()
    assert len(before) > 10
    assert after == before
    assert next_carer > top_carer  # the app's own inserts carry on after the loaded ids


def test_the_household_flag_marks_the_other_children_of_a_shielded_childs_household() -> None:
    """As the registry's ``Child.household_shielded``: another shielded child in the household,
    not the child itself."""
    data = cast(
        ChunkData,
        SimpleNamespace(
            child_household=np.array([0, 0, 0, 1, 1, 2], np.int32),
            child_shielded=np.array([True, False, False, True, True, False]),
        ),
    )
    assert load.household_shielded(data).tolist() == [False, True, True, True, True, False]
