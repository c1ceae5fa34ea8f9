"""The loader writes involvements, carers and carer links in no order a copy of the database
could line up with the children, and the same rows for the same seed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from reference_app.kit.crypto import Crypto
from reference_app.kit.keys import Keyring
from reference_app.kit.sealing import Sealer
from synthetic_data import load, pgcopy
from synthetic_data.plan import Options, Plan, build_plan
from synthetic_data.population import generate_chunk
from synthetic_data.tables import chunk_tables

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHILDREN = 20_000  # a largest chunk of several hundred children


def encoded(plan: Plan, keyring: Keyring) -> tuple[list[str], load.Columns, load.Columns]:
    """The largest chunk's children (in the order written) and its encoded link tables."""
    chunk = max(plan.chunks, key=lambda c: c.count)
    data = generate_chunk(plan, chunk)
    tables = chunk_tables(plan, data)
    la_ids = {la.code: n for n, la in enumerate(plan.las, start=1)}
    encoder = load.Encoder(Crypto(keyring), Sealer.of(keyring), plan, la_ids, NOW)
    return (
        tables.children["child_id"].to_pylist(),
        encoder.involvements(tables, data),
        encoder.child_carers(tables, data),
    )


def positions(children: list[str], tokens: list[bytes], column: str, sealer: Sealer) -> list[int]:
    """Where each sealed child stands in the order the children were written."""
    at = {child: n for n, child in enumerate(children)}
    return [at[sealer.open_ref(token, column)] for token in tokens]


def rank_correlation(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    ra = np.argsort(np.argsort(np.asarray(a)))
    rb = np.argsort(np.argsort(np.asarray(b)))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_involvement_ids_and_link_rows_do_not_follow_the_children(keyring: Keyring) -> None:
    sealer = Sealer.of(keyring)
    children, involvements, links = encoded(build_plan(Options(children=CHILDREN)), keyring)
    assert len(children) > 500
    rows = sorted(involvements.records(), key=lambda r: r["id"])
    order = positions(children, [r["child_id"] for r in rows], "involvements.child_id", sealer)
    assert len(order) > 2 * len(children)  # several involvements a child
    # In the children's order a child's involvements would follow each other (more than half
    # of all neighbours) and positions would rise.
    neighbours = sum(a == b for a, b in itertools.pairwise(order)) / len(order)
    assert neighbours < 0.02
    assert abs(rank_correlation(np.arange(len(order)), order)) < 0.1

    records = list(links.records())
    link_order = positions(
        children, [r["child_id"] for r in records], "child_carers.child_id", sealer
    )
    assert abs(rank_correlation(np.arange(len(link_order)), link_order)) < 0.1
    # Carer ids are numbered after the shuffle too: a carer's id says nothing of its children.
    carer_ids = [r["carer_id"] for r in records]
    assert abs(rank_correlation(carer_ids, link_order)) < 0.1


def test_the_shuffled_rows_are_the_same_for_the_same_seed(keyring: Keyring) -> None:
    plan = build_plan(Options(children=CHILDREN, seed=3))
    first, again = encoded(plan, keyring), encoded(plan, keyring)
    for a, b in zip(first[1:], again[1:], strict=True):
        assert pgcopy.encode(a.batch) == pgcopy.encode(b.batch)
    other = encoded(build_plan(Options(children=CHILDREN, seed=4)), keyring)
    assert pgcopy.encode(other[1].batch) != pgcopy.encode(first[1].batch)


@pytest.mark.parametrize("column", ["involvements.child_id", "child_carers.child_id"])
def test_the_loader_seals_child_ids_as_the_registry_does(keyring: Keyring, column: str) -> None:
    sealer = Sealer.of(keyring)
    children, involvements, links = encoded(build_plan(Options(children=500, seed=3)), keyring)
    columns = involvements if column.startswith("involvements") else links
    for record in list(columns.records())[:50]:
        token = record["child_id"]
        assert isinstance(token, bytes)
        assert len(token) == load.SEALED_ID_BYTES
        assert sealer.open_ref(token, column) in children
