"""Sealed columns: deterministic child references, flags of one length, and no keys no access."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select
from sqlalchemy.exc import StatementError

from reference_app.kit.crypto import DecryptionError
from reference_app.kit.keys import Keyring, generate_document, parse_document
from reference_app.kit.sealing import SealedFlag, SealedRef, Sealer, SealingUnbound, bind


def test_a_reference_is_the_same_every_time_and_differs_by_column(keyring: Keyring) -> None:
    sealer = Sealer.of(keyring)
    token = sealer.ref("CP0000000001A", "involvements.child_id")
    assert token == sealer.ref("CP0000000001A", "involvements.child_id")
    assert token != sealer.ref("CP0000000001A", "child_carers.child_id")
    assert b"CP0000000001A" not in token
    assert sealer.open_ref(token, "involvements.child_id") == "CP0000000001A"


def test_a_reference_opens_only_in_its_own_column_and_with_its_own_keys(keyring: Keyring) -> None:
    sealer = Sealer.of(keyring)
    token = sealer.ref("CP0000000001A", "involvements.child_id")
    with pytest.raises(DecryptionError):
        sealer.open_ref(token, "audit_events.child_id")
    other = Sealer.of(parse_document(generate_document()))
    with pytest.raises(DecryptionError):
        other.open_ref(token, "involvements.child_id")


def test_flags_are_sealed_afresh_each_time_at_one_length(keyring: Keyring) -> None:
    sealer = Sealer.of(keyring)
    yes = [sealer.flag(True, "children.shielded") for _ in range(3)]
    no = [sealer.flag(False, "children.shielded") for _ in range(3)]
    assert len(set(yes + no)) == 6
    assert {len(blob) for blob in yes + no} == {len(yes[0])}
    assert all(sealer.open_flag(b, "children.shielded") for b in yes)
    assert not any(sealer.open_flag(b, "children.shielded") for b in no)


def _table() -> Table:
    return Table(
        "t",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("child_id", SealedRef("t.child_id")),
        Column("flag", SealedFlag("t.flag")),
    )


def test_the_orm_finds_rows_by_a_sealed_reference(keyring: Keyring, tmp_path: Path) -> None:
    table = _table()
    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    bind(engine, Sealer.of(keyring))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{"id": 1, "child_id": "A", "flag": True}, {"id": 2, "child_id": "B", "flag": False}],
        )
        assert conn.execute(select(table.c.id).where(table.c.child_id == "B")).scalar() == 2
        ids = select(table.c.id).where(table.c.child_id.in_(["A", "C"]))
        assert conn.execute(ids).scalars().all() == [1]
        row = conn.execute(select(table).where(table.c.id == 1)).one()
        assert (row.child_id, row.flag) == ("A", True)
        stored = conn.exec_driver_sql("SELECT child_id, flag FROM t").all()
    assert all(isinstance(v, bytes) and v != b"A" for r in stored for v in r)


def test_an_engine_without_keys_refuses_sealed_columns(tmp_path: Path) -> None:
    table = _table()
    engine = create_engine(f"sqlite:///{tmp_path / 'u.db'}")
    table.metadata.create_all(engine)
    with engine.begin() as conn, pytest.raises(StatementError) as raised:
        conn.execute(table.insert(), [{"id": 1, "child_id": "A", "flag": True}])
    assert isinstance(raised.value.orig, SealingUnbound)
