"""`contactpoint load-accounts`: generated practitioners as loginable accounts with caseloads."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from loadtests.accounts import provision
from reference_app.alerts.models import Canary
from reference_app.app import create_app
from reference_app.config import Settings
from reference_app.context import AppContext
from reference_app.kit.keys import Keyring
from reference_app.practitioners.models import Practitioner
from reference_app.services.models import Involvement
from tests.fixtures.database import Database, make_context
from tests.fixtures.population import generate_into, persona_headers


def _population(
    database: Database, keyring: Keyring, tmp_path: Path
) -> tuple[AppContext, Settings]:
    """600 generated children, the registry's context, and settings to provision as its owner."""
    generate_into(database, keyring, tmp_path, children=600, seed=5, personas_per_role=0)
    ctx = make_context(database, keyring)
    return ctx, ctx.settings.model_copy(update={"database_url": database.owner_url})


def test_accounts_log_in_and_their_caseloads_are_their_services_children(
    fresh_database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    ctx, settings = _population(fresh_database, keyring, tmp_path)
    out = tmp_path / "load-personas.json"
    report = provision(settings, out, per_role=2, las=2, caseload=5, workers=1, keyring=keyring)
    personas = json.loads(out.read_text())
    assert report["accounts"] == len(personas) > 10
    assert out.stat().st_mode & 0o077 == 0  # credentials: owner-readable only
    with_cases = [p for p in personas if p["caseload"]]
    assert with_cases
    with ctx.sessions() as db:
        for persona in with_cases[:5]:
            user = db.scalars(
                select(Practitioner).where(Practitioner.username == persona["username"])
            ).one()
            served = set(
                db.scalars(
                    select(Involvement.child_id).where(
                        Involvement.organisation_id == user.organisation_id
                    )
                )
            )
            assert {c["child_id"] for c in persona["caseload"]} <= served
    with TestClient(create_app(ctx)) as client:
        persona = with_cases[0]
        headers = persona_headers(client, persona)
        child = persona["caseload"][0]
        found = client.post(
            "/api/v1/children/search",
            json={"family_name": child["family_name"], "date_of_birth": child["date_of_birth"]},
            headers=headers,
        )
        assert child["child_id"] in {r["child_id"] for r in found.json()["results"]}
        view = client.get(
            f"/api/v1/children/{child['child_id']}",
            headers={**headers, "X-Access-Reason": "service_delivery"},
        )
        assert view.status_code == 200
        assert view.json()["access"]["relationship"] == "involved"
    ctx.engine.dispose()


def test_a_crowd_by_role_adds_colleagues_who_work_their_services_caseloads(
    fresh_database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    ctx, settings = _population(fresh_database, keyring, tmp_path)
    out = tmp_path / "load-personas.json"
    # More police accounts with a caseload than 600 children's population has.
    counts = {"police_practitioner": 40, "education_practitioner": 30, "la_data_manager": 3}
    with ctx.sessions() as db:
        kept = db.scalars(
            select(Practitioner).where(Practitioner.role == "national_auditor").limit(1)
        ).one()
        kept_hash = kept.password_hash
    report = provision(
        settings,
        out,
        las=152,
        caseload=5,
        workers=1,
        keyring=keyring,
        counts=counts,
        keep=frozenset({kept.username}),
    )
    personas = json.loads(out.read_text())
    # Another personas file's account keeps its credentials and is not in this crowd.
    assert kept.username not in {p["username"] for p in personas}
    with ctx.sessions() as db:
        assert db.get(Practitioner, kept.id).password_hash == kept_hash  # type: ignore[union-attr]
    assert report["by_role"] == counts
    assert report["colleagues_added"] > 0
    ordinary = [p for p in personas if p["role"] != "national_auditor"]
    assert len(ordinary) == 73
    assert all(p["caseload"] for p in ordinary if p["role"] != "la_data_manager")
    # No caseload holds a canary: a honeytoken no legitimate workflow touches.
    with ctx.sessions() as db:
        canaries = set(db.scalars(select(Canary.child_id)))
    assert canaries
    assert not canaries & {c["child_id"] for p in ordinary for c in p["caseload"]}
    colleague = next(p for p in ordinary if p["username"].startswith("load-colleague-"))
    assert colleague["role"] == "police_practitioner"
    with TestClient(create_app(ctx)) as client:
        headers = persona_headers(client, colleague)
        child = colleague["caseload"][0]
        view = client.get(
            f"/api/v1/children/{child['child_id']}",
            headers={**headers, "X-Access-Reason": "safeguarding"},
        )
        assert view.status_code == 200
        assert view.json()["access"]["relationship"] == "involved"
    ctx.engine.dispose()
