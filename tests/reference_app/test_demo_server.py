"""`contactpoint serve --demo` over real HTTP: the README's scripted session, end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import create_engine, text


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
                "reference_app.cli",
                "serve",
                "--demo",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--children",
                "120",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
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
        persona = personas[role]
        response = client.post(
            "/api/v1/auth/login",
            json={
                "username": persona["username"],
                "password": persona["password"],
                "otp": pyotp.TOTP(persona["totp_secret"]).now(),
            },
        )
        assert response.status_code == 200
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    # (The data manager persona is left for the README script: a one-time code is single use.)
    with httpx.Client(base_url=base, timeout=10) as client:
        auth = login(client, "health_practitioner")
        # Find a child to look for: the data manager can read the DB-free way, by search on a
        # name drawn from the demo's stock lists.
        found = []
        for family in ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Patel"):
            for given in ("Olivia", "Amelia", "Oliver", "George", "Isla", "Noah", "Ava", "Leo"):
                body = client.post(
                    "/api/v1/children/search",
                    json={"family_name": family, "given_name": given},
                    headers=auth,
                ).json()
                found.extend(body["results"])
            if found:
                break
        assert found, "the demo population should hold a common name"
        child = found[0]
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
    assert "logged in as demo.la-data-manager" in result.stdout
    assert "audit: child:record:viewed reason=safeguarding relationship=data_manager" in (
        result.stdout
    )
