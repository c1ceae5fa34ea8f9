"""`contactpoint load-accounts`: generated practitioners as loginable accounts with caseloads."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from loadtests.accounts import provision
from reference_app.app import create_app
from reference_app.kit.keys import Keyring
from reference_app.practitioners.models import Practitioner
from reference_app.services.models import Involvement
from tests.fixtures.database import Database, make_context
from tests.fixtures.population import generate_into, persona_headers


def test_accounts_log_in_and_their_caseloads_are_their_services_children(
    fresh_database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    generate_into(fresh_database, keyring, tmp_path, children=600, seed=5, personas_per_role=0)
    ctx = make_context(fresh_database, keyring)
    out = tmp_path / "load-personas.json"
    settings = ctx.settings.model_copy(update={"database_url": fresh_database.owner_url})
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
