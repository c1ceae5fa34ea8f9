"""Same seed and shard, same bytes: across runs, worker counts and shard splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from reference_app.kit.identifiers import is_valid
from synthetic_data.ids import encode, permute
from synthetic_data.plan import CHUNK_CHILDREN, Options, build_plan
from synthetic_data.population import generate_chunk
from synthetic_data.runner import RunConfig, run

CHILDREN = 60_000  # over one chunk for the largest LAs, so chunks split within an LA too


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in {".parquet", ".jsonl"}
    }


def generate(
    out: Path, *, workers: int = 1, shard: tuple[int, int] = (0, 1), seed: int = 5
) -> None:
    run(
        RunConfig(
            options=Options(children=CHILDREN, seed=seed, personas_per_role=0),
            data_dir=out,
            out_dir=out,
            workers=workers,
            shard=shard[0],
            shards=shard[1],
        )
    )


def test_a_chunk_is_a_pure_function_of_seed_and_index() -> None:
    plan = build_plan(Options(children=CHILDREN, seed=5))
    chunk = max(plan.chunks, key=lambda c: c.count)
    first, second = generate_chunk(plan, chunk), generate_chunk(plan, chunk)
    for field in dataclasses.fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), field.name
    other = generate_chunk(build_plan(Options(children=CHILDREN, seed=6)), chunk)
    assert not np.array_equal(first.child_given, other.child_given)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("one")
    generate(out)
    return files(out)


def test_output_is_byte_identical_for_any_worker_count(
    one_worker: dict[str, bytes], tmp_path: Path
) -> None:
    generate(tmp_path, workers=2)
    two = files(tmp_path)
    assert len(one_worker) > 600  # six tables' parts plus the side files
    assert two.keys() == one_worker.keys()
    assert [k for k in two if two[k] != one_worker[k]] == []


def test_shards_partition_the_same_population(one_worker: dict[str, bytes], tmp_path: Path) -> None:
    for index in range(3):
        shard_dir = tmp_path / f"shard-{index}"
        generate(shard_dir, shard=(index, 3))
    merged: dict[str, bytes] = {}
    for index in range(3):
        for name, data in files(tmp_path / f"shard-{index}").items():
            if name.endswith(".parquet"):
                assert name not in merged  # each chunk belongs to exactly one shard
                merged[name] = data
    whole = {k: v for k, v in one_worker.items() if k.endswith(".parquet")}
    assert merged.keys() == whole.keys()
    assert [k for k in merged if merged[k] != whole[k]] == []


def test_a_different_seed_gives_a_different_population(
    one_worker: dict[str, bytes], tmp_path: Path
) -> None:
    generate(tmp_path, seed=6)
    other = files(tmp_path)
    assert other["children_sample.jsonl"] != one_worker["children_sample.jsonl"]


def test_child_ids_are_unique_and_valid_across_a_national_population() -> None:
    plan = build_plan(Options())
    positions = np.concatenate(
        [c.index * CHUNK_CHILDREN + np.arange(c.count, dtype=np.int64) for c in plan.chunks]
    )
    numbers = permute(positions, plan.options.seed)
    assert len(positions) == 11_000_000
    assert len(np.unique(numbers)) == len(numbers)
    assert int(numbers.max()) < 2**60
    assert all(is_valid(i) for i in encode(numbers[::1000]))
