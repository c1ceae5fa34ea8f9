"""Each export control switched off in a development build lets its abuse through, so the
harness can show it notices a missing control. (That each works when on is shown in
test_workflow.py and test_violations.py; the pairs are named in each test's docstring.)"""

from __future__ import annotations

import json

import pytest

from reference_app.exports.service import trace
from reference_app.kit.agefile import MAGIC
from reference_app.kit.controls import Control
from tests.fixtures.exports import (
    advance,
    alerts_since,
    fetch,
    flow,
    last_alert_id,
    manager,
    switch_off,
)
from tests.fixtures.world import LA_B, World


def test_without_two_person_approval_the_requester_approves_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On: test_violations.test_the_requester_can_never_approve."""
    switch_off(world, monkeypatch, Control.EXPORT_TWO_PERSON)
    f = flow(world, 2)
    before = last_alert_id(world)
    assert f.request().status_code == 201
    approved = f.approve(by=f.requester)
    assert approved.status_code == 200
    assert approved.json()["decided_by"] == f.requester.id
    assert f.link().status_code == 200
    assert f.download().status_code == 200
    assert alerts_since(world, before) == []


def test_without_the_size_cap_an_oversized_scope_leaves(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On: test_violations.test_a_scope_above_the_cap_is_refused_and_alerted."""
    switch_off(world, monkeypatch, Control.EXPORT_SIZE_CAP, export_max_rows=2)
    f = flow(world, 3)
    before = last_alert_id(world)
    requested = f.request()
    assert requested.status_code == 201
    assert requested.json()["row_count"] == 3
    assert f.approve().status_code == 200
    assert f.link().status_code == 200
    assert f.download().status_code == 200
    ids = {row["child_id"] for row in f.recipient.open(f.blob)}
    assert {child.id for child in f.children} <= ids
    assert alerts_since(world, before) == []


def test_without_link_checks_tampered_expired_and_stolen_links_work(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On: test_violations.test_a_tampered_link_is_refused, test_an_expired_link_is_refused,
    test_another_manager_holding_the_link_is_refused."""
    switch_off(world, monkeypatch, Control.EXPORT_LINK_CHECKS)
    before = last_alert_id(world)

    tampered = flow(world, 1).through_link()
    body = tampered.token.split(".")[0]
    assert tampered.download(token=body + ".AAAA").status_code == 200

    stolen = flow(world, 1).through_link()
    thief = manager(world, LA_B)
    taken = fetch(world, thief, stolen.token)
    assert taken.status_code == 200
    assert taken.content.startswith(MAGIC)

    expired = flow(world, 1).through_link()
    advance(world, monkeypatch, world.ctx.settings.export_link_ttl_seconds + 1)
    assert expired.download().status_code == 200
    assert alerts_since(world, before) == []


def test_without_the_watermark_a_leaked_copy_names_nobody(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On: test_workflow.test_request_approve_link_download_decrypt_and_trace."""
    switch_off(world, monkeypatch, Control.EXPORT_WATERMARK)
    f = flow(world, 2).through_link()
    assert f.download().status_code == 200
    rows = f.recipient.open(f.blob)
    assert {row["child_id"] for row in rows} == {child.id for child in f.children}
    with world.ctx.sessions() as db:
        assert trace(db, world.ctx.crypto, "\n".join(json.dumps(r) for r in rows)) == []


def test_without_encryption_the_file_is_readable_by_whoever_holds_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On: test_workflow.test_the_downloaded_file_holds_no_clear_personal_data."""
    switch_off(world, monkeypatch, Control.EXPORT_ENCRYPTION)
    f = flow(world, 2).through_link()
    response = f.download()
    assert response.status_code == 200
    assert "jsonl" in response.headers["content-disposition"]
    rows = [json.loads(line) for line in f.blob.decode("utf-8").splitlines()]
    for child in f.children:
        assert child.family_name.encode() in f.blob
        assert child.id in {row["child_id"] for row in rows}
