"""`contactpoint serve --demo` over real HTTP: the README's scripted session, end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.fixtures.population import persona_headers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("demo")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTPOINT_")}
    log = data_dir / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "contactpoint.cli",
                "serve",
                "--demo",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            process.wait(timeout=10)
            pytest.fail("demo server did not start:\n" + log.read_text())
        yield base, data_dir
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_demo_generates_its_population_and_side_files(demo: tuple[str, Path]) -> None:
    _, data_dir = demo
    sample = (data_dir / "children_sample.jsonl").read_text().splitlines()
    canaries = (data_dir / "canaries.jsonl").read_text().splitlines()
    assert len(sample) >= 500
    assert canaries
    fields = {"child_id", "family_name", "given_name", "date_of_birth", "postcode"}
    assert fields | {"local_authority", "shielded", "household_shielded"} == set(
        json.loads(sample[0])
    )
    assert not {json.loads(c)["child_id"] for c in canaries} & {
        json.loads(s)["child_id"] for s in sample
    }
    engine = create_engine(f"sqlite:///{data_dir / 'registry.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM children")).scalar_one() == 20_000
    finally:
        engine.dispose()


def test_demo_writes_the_personas_contract(demo: tuple[str, Path]) -> None:
    _, data_dir = demo
    personas = json.loads((data_dir / "personas.json").read_text())
    assert {p["role"] for p in personas} == {
        "education_practitioner",
        "health_practitioner",
        "social_care_practitioner",
        "youth_offending_practitioner",
        "police_practitioner",
        "voluntary_practitioner",
        "la_data_manager",
        "national_auditor",
        "system_administrator",
    }
    for persona in personas:
        assert set(persona) == {
            "username",
            "password",
            "totp_secret",
            "role",
            "organisation",
            "local_authority",
        }
    assert (data_dir / "personas.json").stat().st_mode & 0o077 == 0
    assert (data_dir / "keys.json").stat().st_mode & 0o077 == 0


def test_scripted_session_login_search_view_and_audit(demo: tuple[str, Path]) -> None:
    base, data_dir = demo
    personas = {p["role"]: p for p in json.loads((data_dir / "personas.json").read_text())}

    def login(client: httpx.Client, role: str) -> dict[str, str]:
        return persona_headers(client, personas[role])

    # (The data manager persona is left for the README script: a one-time code is single use.)
    with httpx.Client(base_url=base, timeout=10) as client:
        auth = login(client, "health_practitioner")
        # A searchable child of the persona's LA from the generated sample.
        persona = personas["health_practitioner"]
        sample = [
            json.loads(line)
            for line in (data_dir / "children_sample.jsonl").read_text().splitlines()
        ]
        wanted = next(
            c
            for c in sample
            if c["local_authority"] == persona["local_authority"] and not c["shielded"]
        )
        body = client.post(
            "/api/v1/children/search",
            json={k: wanted[k] for k in ("family_name", "given_name", "date_of_birth")},
            headers=auth,
        ).json()
        assert wanted["child_id"] in [r["child_id"] for r in body["results"]], body
        child = wanted
        record = client.get(
            f"/api/v1/children/{child['child_id']}",
            headers={**auth, "X-Access-Reason": "safeguarding"},
        )
        assert record.status_code == 200
        assert record.headers["cache-control"] == "no-store"
        events = client.get(
            "/api/v1/audit/events",
            params={"child_id": child["child_id"]},
            headers=login(client, "national_auditor"),
        ).json()
        assert isinstance(events, list), events
        assert "child:record:viewed" in [e["tag"] for e in events]
        view = next(e for e in events if e["tag"] == "child:record:viewed")
        assert view["reason_code"] == "safeguarding"
    # The background sealer puts the view into the signed log within a couple of seconds.
    engine = create_engine(f"sqlite:///{data_dir / 'registry.db'}")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                pending = conn.execute(text("SELECT count(*) FROM audit_pending")).scalar_one()
                sealed = conn.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar_one()
            if pending == 0 and sealed:
                break
            time.sleep(0.3)
        assert pending == 0
        assert sealed > 0
    finally:
        engine.dispose()
    verify = subprocess.run(
        [sys.executable, "-m", "reference_app.cli", "audit", "verify"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CONTACTPOINT_")},
            "CONTACTPOINT_DATABASE_URL": f"sqlite:///{data_dir / 'registry.db'}",
            "CONTACTPOINT_KEYS_FILE": str(data_dir / "keys.json"),
            "CONTACTPOINT_ENVIRONMENT": "development",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit log intact" in verify.stdout


def test_the_readme_session_script_runs(demo: tuple[str, Path]) -> None:
    base, data_dir = demo
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["bash", str(root / "scripts" / "demo-session.sh"), base, str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manager = next(
        p
        for p in json.loads((data_dir / "personas.json").read_text())
        if p["role"] == "la_data_manager"
    )
    assert f"logged in as {manager['username']}" in result.stdout
    assert "audit: child:record:viewed reason=safeguarding relationship=data_manager" in (
        result.stdout
    )


def test_the_export_round_trip_script_runs(demo: tuple[str, Path], tmp_path: Path) -> None:
    base, data_dir = demo
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["bash", str(root / "scripts" / "export-round-trip.sh"), base, str(data_dir), tmp_path],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "approved by a second data manager" in result.stdout
    rows = (tmp_path / "export.jsonl").read_text().splitlines()
    assert rows
    assert "opened with age" in result.stdout


def test_demo_writes_a_load_crowd_with_caseloads_and_says_where(demo: tuple[str, Path]) -> None:
    from loadtests.cli import crowd_size
    from loadtests.model import profile_from_name

    _, data_dir = demo
    path = data_dir / "load-personas.json"
    crowd = json.loads(path.read_text())
    assert path.stat().st_mode & 0o077 == 0
    held = Counter(p["role"] for p in crowd)
    for role, wanted in crowd_size(profile_from_name("national-rollout", duration_s=None)).items():
        assert held[role] >= wanted, role
    # Every practitioner looks up its own service's children (a data manager sees its LA's).
    assert all(
        p["caseload"] for p in crowd if p["role"] not in ("la_data_manager", "national_auditor")
    )
    assert (
        f"Load personas (a crowd with caseloads): {path}" in (data_dir / "server.log").read_text()
    )
