"""`keys status`, `keys reencrypt` and `keys retire` on a registry rotated to a new field key,
on SQLite and PostgreSQL: every record reads the same through the app afterwards, nothing is
left under the old key outside the audit trail, an interrupted pass leaves every row readable,
a write by the serving registry during the pass is kept, and a key is retired only when nothing
needs it."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import select

from reference_app.access.permissions import Role
from reference_app.app import create_app
from reference_app.audit.models import AuditEvent
from reference_app.children.models import Child
from reference_app.children.service import child_columns
from reference_app.cli import main
from reference_app.context import AppContext
from reference_app.kit.db import Base
from reference_app.kit.keys import parse_document
from reference_app.kit.sealing import SealedFlag
from reference_app.practitioners.models import Practitioner
from reference_app.rotation import repository, service
from tests.fixtures.database import make_context
from tests.fixtures.exports import Manager, ask, recipient, request_body, scoped_children
from tests.fixtures.world import Account, ChildInfo, PrivateWorld, fresh_key, unique_name

# No free text: a reason's text would be sealed into the trail under the key current then.
REASON = {"X-Access-Reason": "safeguarding"}


@dataclass
class Registry:
    """A private world with something in every sealed column, and how to read it all back."""

    world: PrivateWorld
    children: list[ChildInfo]
    accounts: list[Account]
    headers: dict[str, str]  # an LA data manager's session: sees every field in full
    export_id: int | None
    request_id: int | None


def populate(world: PrivateWorld, *, with_free_text: bool = True) -> Registry:
    """Children (one shielded, so one household flag set), carers, accounts and, unless
    ``with_free_text`` is off, an export and a change request whose free text the audit
    trail also seals."""
    manager = world.new_account(Role.LA_DATA_MANAGER, display_name="Dana Reeve")
    second = world.new_account(Role.LA_DATA_MANAGER, display_name="Omar Haddad")
    headers = world.login(manager)
    org, children = scoped_children(world, 4)
    children.append(world.child(shielded=True))
    export_id = request_id = None
    if with_free_text:
        made = ask(world, Manager(manager, headers), request_body(org, recipient()))
        assert made.status_code == 201, made.text
        export_id = made.json()["id"]
        raised = world.client.post(
            "/api/v1/requests",
            json={
                "child_id": children[0].id,
                "kind": "rectification",
                "justification": "Mother reports the school has the wrong spelling",
                "changes": {"given_name": "Maisie"},
            },
            headers=headers,
        )
        assert raised.status_code == 201, raised.text
        request_id = raised.json()["id"]
        rejected = world.client.post(
            f"/api/v1/requests/{request_id}/decision",
            json={"decision": "reject", "note": "Birth certificate says otherwise"},
            headers=world.login(second),
        )
        assert rejected.status_code == 200, rejected.text
    return Registry(world, children, [manager, second], headers, export_id, request_id)


def read_all(registry: Registry, ctx: AppContext, client: TestClient) -> dict[str, Any]:
    """Everything the registry holds sealed, as the app reads it."""
    out: dict[str, Any] = {}
    for child in registry.children:
        record = client.get(f"/api/v1/children/{child.id}", headers={**registry.headers, **REASON})
        assert record.status_code == 200, record.text
        out[child.id] = record.json()
    with ctx.sessions() as db:
        for child in db.scalars(select(Child)):
            out[f"flags {child.id}"] = (child.shielded, child.household_shielded)
        cipher = ctx.crypto.cipher
        for p in db.scalars(select(Practitioner)):
            out[f"practitioner {p.id}"] = (
                cipher.decrypt(p.display_name_enc, "practitioners.display_name"),
                cipher.decrypt(p.email_enc, "practitioners.email") if p.email_enc else None,
                cipher.decrypt(p.totp_secret_enc, "practitioners.totp_secret"),
            )
        # The trail as stored: each read adds its own view events after these.
        out["audit details"] = [
            e.details for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
    if registry.export_id is not None:
        export = client.get(f"/api/v1/exports/{registry.export_id}", headers=registry.headers)
        assert export.status_code == 200, export.text
        out["export"] = export.json()
    if registry.request_id is not None:
        request = client.get(f"/api/v1/requests/{registry.request_id}", headers=registry.headers)
        assert request.status_code == 200, request.text
        out["request"] = request.json()
    return out


def same(before: dict[str, Any], after: dict[str, Any]) -> None:
    """``after`` reads as ``before`` did, the trail's earlier events unchanged byte for byte."""
    trail = after.pop("audit details")
    assert trail[: len(before["audit details"])] == before["audit details"]
    assert after == {k: v for k, v in before.items() if k != "audit details"}


def rotate(world: PrivateWorld) -> dict[str, Any]:
    """Make a new field key, f2, current in the world's keys file (as rotate_keys.py does)."""
    assert world.keys_file is not None
    document = json.loads(world.keys_file.read_text())
    document["field_keys"]["f2"] = fresh_key()
    document["field_key_current"] = "f2"
    world.keys_file.write_text(json.dumps(document))
    return document


@pytest.fixture
def cli(private_world: PrivateWorld, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CONTACTPOINT_KEYS_FILE", str(private_world.keys_file))
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "test")
    return CliRunner()


@pytest.fixture
def rotated(private_world: PrivateWorld) -> Iterator[tuple[AppContext, TestClient]]:
    """The registry restarted on the rotated document (f2 current, f1 still held)."""
    document = rotate(private_world)
    ctx = make_context(private_world.database, parse_document(document))
    with TestClient(create_app(ctx)) as client:
        yield ctx, client
    ctx.engine.dispose()


def keys(cli: CliRunner, world: PrivateWorld, *args: str) -> Result:
    return cli.invoke(main, ["keys", *args, "--database", world.database.app_url])


def report(result: Result) -> dict[str, Any]:
    assert result.exit_code in (0, 1), (result.output, result.exception)
    return dict(json.loads(result.stdout))


def under(state: dict[str, Any], kid: str) -> dict[str, int]:
    return {name: n[kid] for name, n in state["columns"].items() if n.get(kid)}


def test_every_sealed_column_of_the_schema_is_rewritten() -> None:
    """A new sealed column must join the pass, or its old key could never be retired."""
    in_pass = {(t.name, c.column) for t in repository.TABLES for c in t.columns}
    sealed = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_enc") or isinstance(column.type, SealedFlag)
    }
    assert in_pass == sealed


def test_a_pass_moves_every_rewritable_value_to_the_current_key_and_the_app_reads_the_same(
    private_world: PrivateWorld,
    cli: CliRunner,
    rotated: tuple[AppContext, TestClient],
) -> None:
    world = private_world
    registry = populate(world)
    before = read_all(registry, world.ctx, world.client)
    ctx, client = rotated

    state = report(keys(cli, world, "status", "--json", "-"))
    assert state["current"] == "f2"
    assert under(state, "f1")["children.shielded"] == len(registry.children)
    assert under(state, "f1")["change_requests.decision_note_enc"] == 1
    texts = state["audit_trail"]["sealed_texts_by_key"]
    assert texts["f1"] >= 3  # two justifications and a decision note at least
    assert state["retirable"] == []

    done = keys(cli, world, "reencrypt", "--batch", "2", "--json", "-")
    assert done.exit_code == 0, (done.output, done.exception)
    first = json.loads(done.stdout)
    assert first["rows_rewritten"] == first["rows_to_do"] > 0
    assert first["rows_left_changed_meanwhile"] == 0
    assert first["batches"] > 1
    assert "reencrypt:" in done.stderr  # the progress lines
    after = first["after"]
    assert under(after, "f1") == {}
    assert after["not_under_current"] == 0
    # The audit trail's sealed text is never rewritten: still f1, event for event.
    assert after["audit_trail"] == state["audit_trail"]
    assert after["kept_for_audit_trail"] == {"f1": state["audit_trail"]["events_by_key"]["f1"]}

    same(before, read_all(registry, ctx, client))

    again = json.loads(keys(cli, world, "reencrypt", "--json", "-").stdout)
    assert (again["rows_to_do"], again["rows_rewritten"]) == (0, 0)

    # f1 still opens the trail's text: retiring it is refused, naming the events.
    assert world.keys_file is not None
    document = world.keys_file.read_text()
    refused = keys(cli, world, "retire", "f1", "--keys-file", str(world.keys_file))
    assert refused.exit_code == 1
    events = state["audit_trail"]["events_by_key"]["f1"]
    assert f"{events} audit event(s) hold text sealed under f1" in refused.stderr
    assert "immutable" in refused.stderr
    assert world.keys_file.read_text() == document
    current = keys(cli, world, "retire", "f2", "--keys-file", str(world.keys_file))
    assert current.exit_code == 1
    assert "current field key" in current.stderr


def test_a_key_is_retired_once_nothing_uses_it_and_the_registry_still_reads(
    private_world: PrivateWorld,
    cli: CliRunner,
    rotated: tuple[AppContext, TestClient],
) -> None:
    world = private_world
    assert world.keys_file is not None
    registry = populate(world, with_free_text=False)
    before = read_all(registry, world.ctx, world.client)

    early = keys(cli, world, "retire", "f1", "--keys-file", str(world.keys_file))
    assert early.exit_code == 1
    assert "still under f1" in early.stderr
    assert "reencrypt" in early.stderr

    assert keys(cli, world, "reencrypt").exit_code == 0
    state = report(keys(cli, world, "status", "--json", "-"))
    assert state["retirable"] == ["f1"]
    retired = keys(cli, world, "retire", "f1", "--keys-file", str(world.keys_file))
    assert retired.exit_code == 0, (retired.output, retired.exception)
    assert stat.S_IMODE(world.keys_file.stat().st_mode) == 0o600
    document = json.loads(world.keys_file.read_text())
    assert sorted(document["field_keys"]) == ["f2"]

    # A registry started on the retired document reads everything, and a user logs in (the
    # TOTP secret opens under f2).
    ctx = make_context(world.database, parse_document(document))
    try:
        with TestClient(create_app(ctx)) as client:
            same(before, read_all(registry, ctx, client))
            account = registry.accounts[1]
            ctx.clock.advance(60)  # type: ignore[attr-defined]  # a fresh TOTP step
            login = client.post(
                "/api/v1/auth/login",
                json={
                    "username": account.username,
                    "password": account.password,
                    "otp": pyotp.TOTP(account.totp_secret).at(ctx.clock.now()),
                },
            )
            assert login.status_code == 200, login.text
    finally:
        ctx.engine.dispose()


class Interrupted(Exception):
    pass


def test_an_interrupted_pass_leaves_every_row_readable_and_a_rerun_finishes(
    private_world: PrivateWorld,
    cli: CliRunner,
    rotated: tuple[AppContext, TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = private_world
    registry = populate(world)
    before = read_all(registry, world.ctx, world.client)
    ctx, client = rotated
    write = service._write
    calls = []

    def fail_after_first(*args: Any) -> None:
        if calls:
            raise Interrupted("the host went down")
        calls.append(1)
        write(*args)

    monkeypatch.setattr(service, "_write", fail_after_first)
    stopped = keys(cli, world, "reencrypt", "--batch", "3")
    assert isinstance(stopped.exception, Interrupted)
    monkeypatch.setattr(service, "_write", write)

    half = report(keys(cli, world, "status", "--json", "-"))
    # The first batch (three of the five children) committed; the rest is as it was.
    assert half["columns"]["children.given_name_enc"] == {"f1": 2, "f2": 3}
    assert half["columns"]["carers.given_name_enc"] == {"f1": len(registry.children)}
    same(before, read_all(registry, ctx, client))

    finished = json.loads(keys(cli, world, "reencrypt", "--json", "-").stdout)
    assert finished["after"]["not_under_current"] == 0
    same(before, read_all(registry, ctx, client))


def test_a_row_the_registry_changes_during_the_pass_keeps_the_registrys_write(
    private_world: PrivateWorld,
    cli: CliRunner,
    rotated: tuple[AppContext, TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = private_world
    registry = populate(world, with_free_text=False)
    ctx, client = rotated
    target = registry.children[1]
    renamed = unique_name()
    reseal = service.reseal

    def registry_writes_meanwhile(*args: Any) -> Any:
        resealed = reseal(*args)
        if args[1].name == "children":
            # The serving registry (on the rotated keys) corrects a name and shields the child
            # after the pass read the row and before it writes it back.
            with ctx.sessions() as db, db.begin():
                child = db.get(Child, target.id)
                assert child is not None
                columns = child_columns(
                    ctx.crypto,
                    given_name=target.given_name,
                    family_name=renamed,
                    date_of_birth=target.date_of_birth,
                    address=target.address,
                )
                child.family_name_enc = columns["family_name_enc"]
                child.shielded = True
        return resealed

    monkeypatch.setattr(service, "reseal", registry_writes_meanwhile)
    first = json.loads(keys(cli, world, "reencrypt", "--json", "-").stdout)
    monkeypatch.setattr(service, "reseal", reseal)
    assert first["rows_left_changed_meanwhile"] == 1

    record = client.get(f"/api/v1/children/{target.id}", headers={**registry.headers, **REASON})
    assert record.status_code == 200, record.text
    assert record.json()["family_name"] == renamed
    with ctx.sessions() as db:
        child = db.get(Child, target.id)
        assert child is not None
        assert child.shielded is True

    # What the registry did not rewrite (the given name, the date of birth...) is still under
    # f1: the next pass takes that row, and the one after has nothing to do.
    second = json.loads(keys(cli, world, "reencrypt", "--json", "-").stdout)
    assert (second["rows_rewritten"], second["rows_left_changed_meanwhile"]) == (1, 0)
    assert second["after"]["not_under_current"] == 0
    third = json.loads(keys(cli, world, "reencrypt", "--json", "-").stdout)
    assert third["rows_rewritten"] == 0
    assert (
        client.get(f"/api/v1/children/{target.id}", headers={**registry.headers, **REASON}).json()[
            "family_name"
        ]
        == renamed
    )


def test_the_composed_command_line_offers_the_same_commands(tmp_path: Any) -> None:
    from contactpoint.cli import main as composed

    assert {"status", "reencrypt", "retire"} <= set(composed.commands["keys"].commands)  # type: ignore[attr-defined]
    missing = CliRunner().invoke(
        composed, ["keys", "status", "--database", f"sqlite:///{tmp_path / 'none.db'}"]
    )
    assert missing.exit_code == 2
    assert "no database at" in missing.stderr


def test_retiring_a_key_the_file_lacks_is_a_usage_error(
    private_world: PrivateWorld, cli: CliRunner
) -> None:
    assert private_world.keys_file is not None
    before = private_world.keys_file.read_text()
    result = keys(cli, private_world, "retire", "f9", "--keys-file", str(private_world.keys_file))
    assert result.exit_code == 2
    assert "no field key 'f9'" in result.stderr
    assert private_world.keys_file.read_text() == before


def test_the_keys_file_is_replaced_whole_at_0600_and_a_bad_document_is_never_written(
    tmp_path: Any,
) -> None:
    from reference_app.kit.keys import KeyMaterialError, generate_document, replace_keys_file

    path = tmp_path / "keys.json"
    path.write_text("{}")
    path.chmod(0o644)
    document = generate_document()
    replace_keys_file(path, document)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == document
    with pytest.raises(KeyMaterialError):
        replace_keys_file(path, {**document, "field_keys": {}})
    assert json.loads(path.read_text()) == document
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary file left
