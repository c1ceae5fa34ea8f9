"""A distributed run for real: a master, a worker beside it and a worker in a network namespace.

The test makes its own namespace and veth pair (link-local addresses, nothing routes there from
outside) and deletes them afterwards. The master listens on the host's end of the pair; the
stand-in registry (`tests/fixtures/instant_target.py`) answers there too. Each worker is
started as the README says, with nothing but its personas file: the plan comes from the master.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.model import steady
from tests.fixtures.instant_target import instant_target
from tests.fixtures.slow_registry import write_personas

pytestmark = pytest.mark.long

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests/locustfile.py"
HOST_IP, WORKER_IP = "169.254.150.1", "169.254.150.2"
RUN_S = 20
RATE, ADVERSARIES = 3.0, 9
LENIENT = (
    'min_samples: 20\nobjectives:\n  - endpoint: "*"\n    p99_ms: 20000\n    error_rate: 0.05\n'
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A network namespace joined to this one by a veth pair; deleted afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    name, host_end = f"cpgen{os.getpid()}", f"cpm{os.getpid()}"[:15]
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", "cpw0", "netns", name)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("-n", name, "addr", "add", f"{WORKER_IP}/30", "dev", "cpw0")
        _ip("-n", name, "link", "set", "cpw0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_end)  # takes its peer in the namespace with it
        _ip("netns", "del", name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST_IP, 0))
        return int(s.getsockname()[1])


def _files(folder: Path, drop_last: bool = False) -> Path:
    """The stand-in's personas, copied until they hold the plan's peak of sessions and the
    adversaries (a smaller crowd starves the run), and its one-child sample."""
    folder.mkdir()
    rows = json.loads(write_personas(folder).read_text())
    copies = math.ceil((steady(RATE, RUN_S).users_at(0) + ADVERSARIES) / len(rows))
    many = [{**p, "username": f"{p['username']}-{i}"} for i in range(copies) for p in rows]
    path = folder / "personas.json"
    path.write_text(json.dumps(many[:-1] if drop_last else many))
    return path


def _distributed_run(tmp_path: Path, ns: str, worker_files: Path) -> tuple[int, dict[str, Any]]:
    """Master and local worker on this side, one worker in `ns`; the master's exit and summary."""
    master_files, local_files = _files(tmp_path / "master"), _files(tmp_path / "local")
    (tmp_path / "slo.yaml").write_text(LENIENT)
    port, out = _free_port(), tmp_path / "out"
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    worker = [*locust, "--worker", "--master-host", HOST_IP, "--master-port", str(port)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with instant_target(HOST_IP) as url:
            plan = [
                "--personas", str(master_files), "--load-profile", "steady", "--rate", str(RATE),
                "--duration", str(RUN_S), "--think-scale", "0.2",
                "--adversaries", str(ADVERSARIES),
                "--seed", "7", "--warmup", "3", "--slo", str(tmp_path / "slo.yaml"),
                "--out", str(out),
            ]  # fmt: skip
            master_args = [
                *locust, "--master", "--headless", "--expect-workers", "2",
                "--master-bind-host", HOST_IP, "--master-bind-port", str(port),
                "--host", url, "--only-summary", "--stop-timeout", "2", *plan,
            ]  # fmt: skip
            master = subprocess.Popen(master_args, cwd=ROOT)
            procs.append(master)
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, *worker, "--personas", str(worker_files)],
                    cwd=ROOT,
                )
            )
            procs.append(subprocess.Popen([*worker, "--personas", str(local_files)], cwd=ROOT))
            code = master.wait(timeout=RUN_S + 120)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    return code, json.loads((out / "summary.json").read_text())


def test_a_worker_in_another_namespace_runs_the_masters_plan(
    namespace: str, tmp_path: Path
) -> None:
    worker_files = _files(tmp_path / "remote")
    code, summary = _distributed_run(tmp_path, namespace, worker_files)
    run = summary["run"]
    assert run["valid"], run["invalid_reasons"]
    assert code == 0
    # The master's plan, not a worker's default (a 600 s national rollout, no adversaries).
    assert run["profile"] == "steady"
    assert run["duration_s"] == RUN_S
    assert run["workers"] == 2
    assert sorted(run["plan"]["workers"].values()) == ["taken", "taken"]
    assert summary["generator"]["processes"] == 2
    rate = summary["rate"]
    assert rate["planned"] > 0
    assert abs(rate["planned"] - rate["expected_by_plan"]) < 0.5 * rate["expected_by_plan"]
    # Adversaries reached both workers, the one in the namespace included.
    detection = summary["detection"]
    assert detection["adversaries"] == ADVERSARIES
    runs = detection["adversary_runs"]
    assert {r["generator"] for r in runs} == {0, 1}
    assert all(r["requests"] > 0 for r in runs)


def test_a_worker_with_other_personas_makes_the_run_invalid_and_is_named(
    namespace: str, tmp_path: Path
) -> None:
    worker_files = _files(tmp_path / "remote", drop_last=True)
    code, summary = _distributed_run(tmp_path, namespace, worker_files)
    run = summary["run"]
    assert code == 3
    assert not run["valid"]
    refused = [r for r in run["invalid_reasons"] if "refused the master's plan" in r]
    assert len(refused) == 1, run["invalid_reasons"]
    assert "personas" in refused[0]
    assert sorted(run["plan"]["workers"].values()) == ["not taken", "taken"]
