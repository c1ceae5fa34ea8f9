"""The published OpenAPI document is complete, and what the API answers conforms to it.

The conformance is checked by a contract validator (openapi-core, ``security_tests.contract``),
not by hand: every exchange of a tour of the API, good requests and bad, is validated against
the document the registry serves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from reference_app.access.permissions import Role
from reference_app.children.schemas import ACCESS_REASON_PATTERN
from reference_app.kit.contract import BEARER, ERROR_SCHEMA
from reference_app.kit.identifiers import CHILD_ID_PATTERN
from security_tests.contract import Contract, Exchange, Recorder, check
from tests.fixtures.world import LA_A, World, unique_name

API = "/api/v1"
PUBLIC = {("post", f"{API}/auth/login"), ("post", f"{API}/auth/enrol")}
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
def document(world: World) -> dict[str, Any]:
    response = world.client.get(
        f"{API}/openapi.json", headers=world.headers(Role.HEALTH_PRACTITIONER)
    )
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_refusal_is_documented_as_the_error_envelope(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text  # the body FastAPI documents and never sends
    refusals = 0
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                refusals += 1
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}, (path, status)
        statuses = set(operation["responses"])
        assert "503" in statuses, (method, path)
        if path.startswith(API):
            assert "429" in statuses, (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in statuses, (method, path)
        if method in ("post", "patch"):
            assert {"400", "409", "413"} <= statuses, (method, path)
    assert refusals > 250


def test_a_bearer_scheme_guards_every_route_but_the_public_ones(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"][BEARER]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    public = set()
    for path, method, operation in _operations(document):
        if operation["security"] == [{BEARER: []}]:
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
        else:
            assert operation["security"] == []
            public.add((method, path))
    assert public == PUBLIC | {("get", "/healthz"), ("get", "/readyz")}


def test_parameters_carry_their_bounds(document: dict[str, Any]) -> None:
    child_ids = 0
    for path, method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["name"] == "child_id":
                child_ids += 1
                options = schema.get("anyOf", [schema])
                assert any(o.get("pattern") == CHILD_ID_PATTERN for o in options), (method, path)
            if parameter["name"].lower() == "x-access-reason":
                assert parameter["required"] is True
                assert schema["pattern"] == ACCESS_REASON_PATTERN
                assert schema["maxLength"] == 500
    assert child_ids >= 8
    assert re.fullmatch(CHILD_ID_PATTERN, "JDPF68Q1VRMWR")
    body = document["components"]["schemas"]["RequestCreate"]["properties"]["child_id"]
    assert body["pattern"] == CHILD_ID_PATTERN


def _tour(world: World) -> None:
    """Good and bad requests across the API, as a client might send them."""
    client = world.client
    manager = world.headers(Role.LA_DATA_MANAGER, LA_A)
    practitioner = world.headers(Role.HEALTH_PRACTITIONER, LA_A)
    admin = world.headers(Role.SYSTEM_ADMINISTRATOR, LA_A)
    auditor = world.headers(Role.NATIONAL_AUDITOR, LA_A)
    child = world.child()
    reason = {"X-Access-Reason": "safeguarding; tour"}
    client.post(f"{API}/auth/login", json={"username": "nobody", "password": "x", "otp": "123456"})
    client.post(f"{API}/auth/login", json={"username": "nobody"})
    client.get(f"{API}/auth/me", headers=manager)
    client.head(f"{API}/auth/me", headers=manager)
    client.get(f"{API}/auth/me")
    client.get(f"{API}/auth/me", headers={"Authorization": "Bearer forged"})
    client.post(
        f"{API}/children/search",
        json={"family_name": child.family_name, "date_of_birth": child.date_of_birth},
        headers=practitioner,
    )
    client.post(f"{API}/children/search", json={"family_name": "A"}, headers=practitioner)
    client.post(f"{API}/children/search", content=b"{not json", headers=practitioner)
    client.get(f"{API}/children/{child.id}", headers={**practitioner, **reason})
    client.get(f"{API}/children/{child.id}", headers=manager)
    client.get(f"{API}/children/{child.id}", headers={**manager, "X-Access-Reason": "curiosity"})
    client.get(f"{API}/children/NOTANIDENTIFIER", headers={**manager, **reason})
    client.get(f"{API}/children/{child.id}", headers={**admin, **reason})
    created = client.post(
        f"{API}/children",
        json={
            "given_name": "Ivy",
            "family_name": unique_name(),
            "date_of_birth": "2019-05-04",
            "gender": "female",
            "address": {"line1": "3 Brook Lane", "town": "Preston", "postcode": "PR2 3ZZ"},
        },
        headers=manager,
    )
    new_id = created.json()["child_id"]
    client.post(f"{API}/children", json={"date_of_birth": 0}, headers=manager)
    client.patch(f"{API}/children/{new_id}", json={"given_name": "Isla"}, headers=manager)
    client.patch(f"{API}/children/{new_id}", json={}, headers=manager)
    client.post(f"{API}/children/{new_id}/shield", json={"shielded": True}, headers=manager)
    client.post(f"{API}/children/{new_id}/shield", json={"shielded": True}, headers=manager)
    client.post(f"{API}/children/{new_id}/shield", json={"shielded": False}, headers=manager)
    claim = client.post(f"{API}/children/{child.id}/involvements", json={}, headers=practitioner)
    client.post(
        f"{API}/children/{child.id}/involvements",
        json={"started_on": "1990-01-01"},
        headers=practitioner,
    )
    if claim.status_code == 201:
        client.post(f"{API}/involvements/{claim.json()['id']}/confirm", headers=manager)
        client.post(f"{API}/involvements/{claim.json()['id']}/confirm", headers=manager)
    client.get(f"{API}/alerts", params={"limit": 5}, headers=manager)
    client.get(f"{API}/alerts", params={"limit": 0}, headers=manager)
    client.get(f"{API}/alerts/2147483647", headers=manager)
    client.get(f"{API}/exports", headers=manager)
    client.get(f"{API}/exports/1", headers=practitioner)
    client.get(f"{API}/requests", headers=manager)
    client.get(f"{API}/subject-access/{child.id}", headers=manager)
    client.get(f"{API}/audit/events", params={"child_id": child.id}, headers=auditor)
    client.get(f"{API}/audit/checkpoints/latest", headers=auditor)
    client.post(
        f"{API}/users",
        json={
            "username": f"tour{unique_name().lower()}",
            "display_name": "Tour Guide",
            "role": "health_practitioner",
            "organisation_id": world.accounts[(Role.HEALTH_PRACTITIONER, LA_A)].organisation_id,
        },
        headers=admin,
    )
    client.request("DELETE", f"{API}/children/{child.id}", headers=manager)
    client.get(f"{API}/nowhere", headers=manager)
    client.post(f"{API}/children/search", content=b"x" * 70_000, headers=practitioner)
    client.post(
        f"{API}/children/search",
        content=b"[" * 100 + b"]" * 100,
        headers={**practitioner, "content-type": "application/json"},
    )
    client.get("/healthz")
    client.get("/readyz")


def test_every_answer_of_a_tour_of_the_api_conforms_to_the_document(
    world: World, document: dict[str, Any]
) -> None:
    recorder = Recorder()
    hooks = world.client.event_hooks
    world.client.event_hooks = {**hooks, "response": [*hooks.get("response", []), recorder]}
    try:
        _tour(world)
    finally:
        world.client.event_hooks = hooks
    verdict = check(Contract(document), recorder.exchanges)
    print(verdict.summary())
    print(*verdict.violations, sep="\n")
    assert verdict.checked >= 40
    assert len({s for s in verdict.statuses if s >= 400}) >= 8  # refusals of every kind
    assert verdict.violations == []


def test_the_validator_finds_an_answer_off_the_document(document: dict[str, Any]) -> None:
    """The check can fail: an answer the document does not allow is named."""
    contract = Contract(document)
    request = httpx.Request("GET", f"http://registry{API}/auth/me")
    wrong = [
        httpx.Response(200, json={"id": "not a number"}, request=request),
        httpx.Response(418, json={"error": {"code": "teapot"}}, request=request),
        httpx.Response(401, json={"detail": "Not authenticated"}, request=request),
    ]
    verdict = check(contract, (Exchange.of(r) for r in wrong))
    assert len(verdict.violations) == 3
