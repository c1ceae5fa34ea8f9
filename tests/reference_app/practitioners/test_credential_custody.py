"""Credential custody: whoever creates an account gets a one-time enrolment code, never the
user's password or TOTP secret; the user enrols, and changes either later themselves."""

from __future__ import annotations

import hashlib
from typing import Any

import pyotp
from httpx import Response

from reference_app.access.permissions import Role
from reference_app.kit.controls import Control
from reference_app.practitioners.models import Practitioner
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, Account, World, strict_world, unique_name

ENROL = "/api/v1/auth/enrol"
LOGIN = "/api/v1/auth/login"
PASSWORD = "a long enough passphrase"
NEW_PASSWORD = "another long passphrase"


def _create(w: World, admin: dict[str, str] | None = None) -> dict[str, Any]:
    made = w.client.post(
        "/api/v1/users",
        json={
            "username": f"made.{unique_name().lower()}",
            "display_name": "Made Account",
            "role": "national_auditor",
            "organisation_id": w.orgs[(LA_A, OrganisationKind.NATIONAL_AUDIT)],
        },
        headers=admin or w.headers(Role.SYSTEM_ADMINISTRATOR),
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def _enrol(w: World, username: str, code: str, password: str = PASSWORD) -> Response:
    return w.client.post(
        ENROL, json={"username": username, "enrolment_code": code, "password": password}
    )


def _account(created: dict[str, Any], password: str, secret: str) -> Account:
    return Account(
        created["id"], created["username"], password, secret, Role.NATIONAL_AUDITOR, LA_A, 0
    )


def _login(w: World, account: Account) -> Response:
    return w.client.post(
        LOGIN,
        json={"username": account.username, "password": account.password, "otp": w.otp(account)},
    )


def _row(w: World, practitioner_id: int) -> Practitioner:
    with w.ctx.sessions() as db:
        row = db.get(Practitioner, practitioner_id)
        assert row is not None
        db.expunge(row)
        return row


def test_creation_answers_an_enrolment_code_and_no_credentials(world: World) -> None:
    created = _create(world)
    assert "password" not in created
    assert "totp_secret" not in created
    code = created["enrolment_code"]
    assert len(code) >= 32
    assert created["enrolment_expires_at"]
    row = _row(world, created["id"])
    assert row.enrolment_code_hash == hashlib.sha256(code.encode()).hexdigest()
    assert code not in (row.enrolment_code_hash, row.password_hash)


def test_login_is_refused_until_enrolled_like_any_wrong_password(world: World) -> None:
    created = _create(world)
    refused = world.client.post(
        LOGIN, json={"username": created["username"], "password": PASSWORD, "otp": "123456"}
    )
    unknown = world.client.post(
        LOGIN, json={"username": "nobody.here", "password": PASSWORD, "otp": "123456"}
    )
    assert refused.status_code == unknown.status_code == 401
    assert refused.json()["error"]["code"] == unknown.json()["error"]["code"]
    assert refused.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_enrolment_sets_the_password_and_hands_the_user_its_secret_once(world: World) -> None:
    created = _create(world)
    enrolled = _enrol(world, created["username"], created["enrolment_code"])
    assert enrolled.status_code == 200, enrolled.text
    secret = enrolled.json()["totp_secret"]
    assert enrolled.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert _login(world, _account(created, PASSWORD, secret)).status_code == 200
    replay = _enrol(world, created["username"], created["enrolment_code"], NEW_PASSWORD)
    wrong = _enrol(world, created["username"], "not-the-code")
    unknown = _enrol(world, "nobody.here", created["enrolment_code"])
    # A used code, a wrong one and an unknown user answer alike: no oracle for either.
    for refused in (replay, wrong, unknown):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_enrolment"
        assert refused.json()["error"]["message"] == replay.json()["error"]["message"]
    assert _row(world, created["id"]).enrolment_code_hash is None


def test_an_expired_enrolment_code_is_refused(world: World) -> None:
    # A world with its own clock: days pass in it without ending the shared world's sessions.
    with strict_world(world) as w:
        created = _create(w, w.login(w.new_account(Role.SYSTEM_ADMINISTRATOR)))
        w.clock.advance(w.ctx.settings.enrolment_code_ttl_hours * 3600 + 1)
        expired = _enrol(w, created["username"], created["enrolment_code"])
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "invalid_enrolment"


def test_a_weak_password_is_refused_at_enrolment(world: World) -> None:
    created = _create(world)
    for weak in ("short", created["username"] + "-1234567", "aaaaaaaaaaaaaaaa"):
        refused = _enrol(world, created["username"], created["enrolment_code"], weak)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "weak_password"
    assert _enrol(world, created["username"], created["enrolment_code"]).status_code == 200


def test_a_user_changes_their_own_password(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    other = world.login(account)
    world.clock.advance(31)
    headers = world.login(account)
    world.clock.advance(31)
    wrong = world.client.post(
        "/api/v1/auth/password",
        json={"current_password": "wrong", "otp": world.otp(account), "new_password": PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 401
    world.clock.advance(31)
    changed = world.client.post(
        "/api/v1/auth/password",
        json={
            "current_password": account.password,
            "otp": world.otp(account),
            "new_password": NEW_PASSWORD,
        },
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    assert world.client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert world.client.get("/api/v1/auth/me", headers=other).status_code == 401
    world.clock.advance(31)
    assert _login(world, account).status_code == 401
    world.clock.advance(31)
    moved = Account(**{**account.__dict__, "password": NEW_PASSWORD})
    assert _login(world, moved).status_code == 200


def test_a_user_replaces_their_own_totp_secret(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    headers = world.login(account)
    world.clock.advance(31)
    reset = world.client.post(
        "/api/v1/auth/totp",
        json={"password": account.password, "otp": world.otp(account)},
        headers=headers,
    )
    assert reset.status_code == 200, reset.text
    secret = reset.json()["totp_secret"]
    assert secret != account.totp_secret
    world.clock.advance(31)
    assert _login(world, account).status_code == 401
    world.clock.advance(31)
    moved = Account(**{**account.__dict__, "totp_secret": secret})
    assert pyotp.TOTP(secret).at(world.clock.now())
    assert _login(world, moved).status_code == 200


def test_with_credential_custody_off_the_creator_gets_the_credentials(world: World) -> None:
    """On: test_creation_answers_an_enrolment_code_and_no_credentials."""
    with strict_world(world, off=[Control.CREDENTIAL_CUSTODY]) as w:
        created = _create(w, w.login(w.new_account(Role.SYSTEM_ADMINISTRATOR)))
        assert "enrolment_code" not in created
        account = _account(created, created["password"], created["totp_secret"])
        assert _login(w, account).status_code == 200
