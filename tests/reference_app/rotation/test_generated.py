"""The pass over a generated registry (the bulk loader's rows, carers' addresses included), on
SQLite and PostgreSQL: every sealed value opens to the same text afterwards, all under the new
key, and the children read the same through the app's own service functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from reference_app.children.models import Child
from reference_app.children.service import child_address, child_identity
from reference_app.cli import main
from reference_app.context import AppContext
from reference_app.kit.crypto import FieldCipher
from reference_app.kit.keys import Keyring, generate_document, parse_document, write_keys_file
from reference_app.rotation import repository
from tests.fixtures.database import Database, make_context
from tests.fixtures.population import generate_into
from tests.fixtures.world import fresh_key


def opened(ctx: AppContext) -> dict[tuple[str, str, Any], str]:
    """Every rewritable value of the registry, decrypted, by (table, column, row key)."""
    cipher: FieldCipher = ctx.crypto.cipher
    out: dict[tuple[str, str, Any], str] = {}
    with ctx.engine.connect() as conn:
        for sealed in repository.TABLES:
            t = sealed.stored()
            rows = conn.execute(select(t.c[sealed.key], *(t.c[c.column] for c in sealed.columns)))
            for key, *values in rows:
                for c, value in zip(sealed.columns, values, strict=True):
                    if value is not None:
                        out[(sealed.name, c.column, key)] = cipher.decrypt(bytes(value), c.context)
    with ctx.sessions() as db:
        for child in db.scalars(select(Child)):
            identity = child_identity(ctx.crypto, child)
            out[("app", "child", child.id)] = json.dumps(
                [identity, child_address(ctx.crypto, child), child.shielded], sort_keys=True
            )
    return out


def test_a_generated_registry_reads_the_same_after_the_pass(
    fresh_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = generate_document()
    keys_file = tmp_path / "keys.json"
    write_keys_file(keys_file, document)
    keyring: Keyring = parse_document(document)
    generate_into(fresh_database, keyring, tmp_path / "data", children=300, seed=5)
    old = make_context(fresh_database, keyring)
    try:
        before = opened(old)
    finally:
        old.engine.dispose()
    assert any(table == "carers" and column == "address_enc" for table, column, _ in before)

    document["field_keys"]["f2"] = fresh_key()
    document["field_key_current"] = "f2"
    keys_file.write_text(json.dumps(document))
    monkeypatch.setenv("CONTACTPOINT_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("CONTACTPOINT_ENVIRONMENT", "test")
    result = CliRunner().invoke(
        main, ["keys", "reencrypt", "--database", fresh_database.app_url, "--json", "-"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    done = json.loads(result.stdout)
    assert done["values_rewritten"] == sum(1 for k in before if k[0] != "app")
    assert done["after"]["not_under_current"] == 0
    assert done["after"]["retirable"] == ["f1"]

    # Only f2 is needed now: a registry holding f2 alone reads every value the same.
    only_new = parse_document({**document, "field_keys": {"f2": document["field_keys"]["f2"]}})
    new = make_context(fresh_database, only_new)
    try:
        assert opened(new) == before
    finally:
        new.engine.dispose()
