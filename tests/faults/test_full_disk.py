"""A SQLite registry on a full filesystem (a small tmpfs, filled): views are refused 503
``dependency_unavailable`` (never served without their audit event), ``/readyz`` turns not ready,
and service returns when space does."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from security_tests import local
from tests.faults.conftest import (
    Caller,
    Registry,
    assert_alive_not_ready,
    assert_refused,
    audited_request_ids,
    fault_env,
    report,
    wait_until,
)

pytestmark = pytest.mark.fault

SIZE_MIB = 48


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return local.prepare(
        tmp_path_factory.mktemp("faults-sqlite") / "template", children=300, personas_per_role=2
    )


@pytest.fixture
def small_filesystem() -> Iterator[Path]:
    """A tmpfs of a few MiB of the test's own (needs root; fails in CI without it)."""
    where = Path(tempfile.mkdtemp(prefix="cp-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        where.rmdir()
        reason = f"cannot mount a small tmpfs: {mounted.stderr.decode(errors='replace')}"
        if os.environ.get("CONTACTPOINT_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            where.rmdir()


def _sqlite_registry(template: Path, directory: Path, **settings: str) -> Registry:
    """Serve a copy of the SQLite ``template`` from ``directory`` (limits in memory)."""
    for name in ("registry.db", "keys.json", "personas.json", "children_sample.jsonl"):
        shutil.copy2(template / name, directory / name)
    env = fault_env(directory, f"sqlite:///{directory / 'registry.db'}", None)
    registry = Registry(directory, {**env, **settings})
    registry.start()
    return registry


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem refuses more; return it."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb") as f, contextlib.suppress(OSError):
        for _ in range(SIZE_MIB * 16 + 16):  # bounded: more chunks than the filesystem holds
            f.write(chunk)
            f.flush()
    return filler


def test_full_disk_refuses_views_and_heals_when_space_returns(
    sqlite_template: Path, small_filesystem: Path
) -> None:
    registry = _sqlite_registry(
        sqlite_template, small_filesystem, CONTACTPOINT_READY_MIN_FREE_MIB="1"
    )
    database_url = registry.env["CONTACTPOINT_DATABASE_URL"]
    caller = None
    try:
        caller = Caller(registry)
        before = [caller.view(n) for n in range(3)]
        assert {o.status for o in before} == {200}
        filler = _fill(small_filesystem)
        views = [caller.view(n) for n in range(40)]
        # The first few may still fit in pages SQLite already holds; then every one is refused.
        served = [o for o in views if o.status == 200]
        refused = [o for o in views if o.status != 200]
        assert refused, "nothing was refused on a full disk"
        assert_refused(refused)
        assert_alive_not_ready(caller)
        filler.unlink()
        began = time.monotonic()
        wait_until(lambda: caller.probe("/readyz").status == 200, within=20)
        wait_until(lambda: caller.view().status == 200, within=20)
        recovered = time.monotonic() - began
        acknowledged = [o.request_id for o in before + served if o.request_id]
        registry.stop()
        missing = set(acknowledged) - audited_request_ids(database_url, acknowledged)
        assert not missing, f"{len(missing)} acknowledged views without their audit event"
        report(
            "sqlite-full-disk",
            served_on_full_disk=len(served),
            refused=len(refused),
            refused_max_s=round(max(o.seconds for o in refused), 2),
            recovered_s=round(recovered, 2),
        )
    finally:
        if caller is not None:
            caller.close()
        registry.stop()


def test_locked_database_refuses_views_within_the_busy_timeout(
    sqlite_template: Path, tmp_path: Path
) -> None:
    registry = _sqlite_registry(sqlite_template, tmp_path)
    caller = None
    holder = sqlite3.connect(tmp_path / "registry.db", isolation_level=None, timeout=10)
    try:
        caller = Caller(registry, nth=1)  # another account than the other test's copy logs in
        assert caller.view().status == 200
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy wait
        views = [caller.view(n) for n in range(3)]
        assert_refused(views)
        holder.execute("ROLLBACK")
        began = time.monotonic()
        wait_until(lambda: caller.view().status == 200, within=20)
        report(
            "sqlite-locked",
            refused_max_s=round(max(o.seconds for o in views), 2),
            recovered_s=round(time.monotonic() - began, 2),
        )
    finally:
        holder.close()
        if caller is not None:
            caller.close()
        registry.stop()
