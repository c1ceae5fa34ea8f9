"""Two-factor login, lock-outs, tokens and sessions (ASVS 6.3.2, 6.5.1, 9.1.2, 9.2.1, 8.3.2),
each control shown working and, switched off in a development build, letting its abuse through."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditEvent
from reference_app.audit.tags import EventTag
from reference_app.kit.controls import Control
from reference_app.practitioners import repository
from tests.fixtures.world import LA_A, World, strict_world

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/children/search"
SEARCH = {"family_name": "Nobody", "given_name": "Noone"}


@pytest.fixture(autouse=True)
def _clean_throttles(world: World) -> None:
    """Every request here comes from the one test client address: start each test afresh."""
    from sqlalchemy import delete

    from reference_app.practitioners.models import LoginThrottle

    with world.ctx.sessions() as db, db.begin():
        db.execute(delete(LoginThrottle))


def _login(world: World, username: str, password: str, otp: str, source: str | None = None):
    headers = {"X-Forwarded-For": source} if source else {}
    return world.client.post(
        LOGIN, json={"username": username, "password": password, "otp": otp}, headers=headers
    )


def _failures(world: World, actor_id: int) -> int:
    with world.ctx.sessions() as db:
        query = select(func.count()).where(
            AuditEvent.tag == EventTag.AUTH_LOGIN_FAILED, AuditEvent.actor_id == actor_id
        )
        return db.scalar(query) or 0


def test_login_with_password_and_code_gives_a_short_lived_bearer_token(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    response = _login(world, account.username, account.password, world.otp(account))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == world.ctx.settings.token_ttl_seconds
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert world.client.post(ME, json=SEARCH, headers=headers).status_code == 200


def test_a_one_time_code_cannot_be_replayed(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    code = world.otp(account)
    assert _login(world, account.username, account.password, code).status_code == 200
    replay = _login(world, account.username, account.password, code)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize("what", ["password", "otp"])
def test_wrong_password_or_code_is_refused(world: World, what: str) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    password = account.password + "x" if what == "password" else account.password
    otp = world.otp(account)
    otp = f"{(int(otp) + 1) % 10**6:06d}" if what == "otp" else otp
    response = _login(world, account.username, password, otp)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_unknown_user_and_wrong_password_answer_alike(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    wrong = _login(world, account.username, "not-the-password", "123456")
    unknown = _login(world, "no.such.user", "not-the-password", "123456")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: {k: v for k, v in r.json()["error"].items() if k != "request_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert set(wrong.headers) == set(unknown.headers)


def test_unknown_user_costs_one_argon2_verification_like_a_known_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal cost is shown by counting the expensive step, not by timing it."""
    real = world.ctx.password_hasher
    calls: list[str] = []

    class CountingHasher:
        def verify(self, stored: str, password: str) -> bool:
            calls.append(stored)
            return real.verify(stored, password)

        def hash(self, password: str) -> str:
            return real.hash(password)

    monkeypatch.setattr(world.ctx, "password_hasher", CountingHasher())
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    _login(world, account.username, "not-the-password", "123456")
    _login(world, "no.such.user.at.all", "not-the-password", "123456")
    assert len(calls) == 2
    assert calls[1] == world.ctx.dummy_password_hash
    params = [stored.split("$")[3] for stored in calls]  # m=…,t=…,p=… of each hash
    assert params[0] == params[1]


def test_account_locks_after_repeated_failures_even_for_unknown_names(world: World) -> None:
    limit = world.ctx.settings.login_max_failures_account
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    for name in (account.username, "ghost.account.name"):
        for _ in range(limit):
            assert _login(world, name, "wrong", "000000").status_code == 401
        locked = _login(world, name, "wrong", "000000")
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "too_many_attempts"
        assert int(locked.headers["Retry-After"]) > 0
    # Locked out, the right password and code are refused too.
    right = _login(world, account.username, account.password, world.otp(account))
    assert right.status_code == 429
    world.clock.advance(world.ctx.settings.login_lockout_seconds + 31)
    assert _login(world, account.username, account.password, world.otp(account)).status_code == 200


def _from(world: World, source: str) -> TestClient:
    """A client of the same app that connects from another address."""
    return TestClient(world.client.app, client=(source, 50000))


def _attempt(client: TestClient, username: str, password: str, otp: str):
    return client.post(LOGIN, json={"username": username, "password": password, "otp": otp})


def test_wrong_logins_from_one_source_do_not_lock_the_account_out_at_another(
    world: World,
) -> None:
    """Knowing a username is not enough to lock its practitioner out (denial of service)."""
    limit = world.ctx.settings.login_max_failures_account
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    attacker = _from(world, "198.51.100.7")
    for _ in range(limit):
        assert _attempt(attacker, account.username, "wrong", "000000").status_code == 401
    locked = _attempt(attacker, account.username, account.password, world.otp(account))
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_attempts"
    world.clock.advance(31)
    # The practitioner, at their own address, logs in as usual.
    assert _login(world, account.username, account.password, world.otp(account)).status_code == 200


def test_an_account_and_source_pair_backs_off_exponentially(world: World) -> None:
    settings = world.ctx.settings
    limit, base = settings.login_max_failures_account, settings.login_backoff_seconds
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    waits = []
    for _ in range(limit - 1):
        assert _login(world, account.username, "wrong", "000000").status_code == 401
    for _ in range(3):
        assert _login(world, account.username, "wrong", "000000").status_code == 401
        locked = _login(world, account.username, "wrong", "000000")
        assert locked.status_code == 429
        waits.append(int(locked.headers["Retry-After"]))
        world.clock.advance(waits[-1])
    # Retry-After rounds the time left up to a whole second.
    assert [round(wait / base) for wait in waits] == [1, 2, 4]


def test_with_lockout_per_source_off_anyone_locks_the_account_everywhere(world: World) -> None:
    """On: test_wrong_logins_from_one_source_do_not_lock_the_account_out_at_another."""
    with strict_world(world, off=[Control.LOCKOUT_PER_SOURCE]) as w:
        account = w.new_account(Role.HEALTH_PRACTITIONER)
        attacker = _from(w, "198.51.100.8")
        for _ in range(w.ctx.settings.login_max_failures_account):
            assert _attempt(attacker, account.username, "wrong", "000000").status_code == 401
        refused = _login(w, account.username, account.password, w.otp(account))
    assert refused.status_code == 429


def _answer(response) -> tuple:
    error = {k: v for k, v in response.json()["error"].items() if k != "request_id"}
    return response.status_code, error, sorted(set(response.headers) - {"x-request-id"})


def test_a_suspended_accounts_right_password_answers_like_a_wrong_one(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    admin = world.headers(Role.SYSTEM_ADMINISTRATOR)
    world.client.patch(f"/api/v1/users/{account.id}", json={"status": "suspended"}, headers=admin)
    right = _login(world, account.username, account.password, world.otp(account))
    wrong = _login(world, account.username, "not-the-password", "000000")
    assert _answer(right) == _answer(wrong)
    assert right.status_code == 401
    assert _failures(world, account.id) == 2


def test_with_uniform_refusals_off_a_suspended_account_says_so(world: World) -> None:
    """On: test_a_suspended_accounts_right_password_answers_like_a_wrong_one."""
    with strict_world(world, off=[Control.UNIFORM_REFUSALS]) as w:
        account = w.new_account(Role.HEALTH_PRACTITIONER)
        admin = w.login(w.new_account(Role.SYSTEM_ADMINISTRATOR))
        w.client.patch(f"/api/v1/users/{account.id}", json={"status": "suspended"}, headers=admin)
        right = _login(w, account.username, account.password, w.otp(account))
    assert right.status_code == 403
    assert right.json()["error"]["code"] == "account_suspended"


def test_source_locks_after_failures_across_many_accounts(world: World) -> None:
    limit = world.ctx.settings.login_max_failures_source
    for n in range(limit):
        _login(world, f"stuffing.{n}", "password1", "000000")
    # The test client's source address is now locked, whatever account it tries.
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    response = _login(world, account.username, account.password, world.otp(account))
    assert response.status_code == 429
    with world.ctx.sessions() as db, db.begin():
        repository.clear_throttle(db, f"source:{world.source}")
    assert _login(world, account.username, account.password, world.otp(account)).status_code == 200


def _token(world: World) -> tuple[str, dict]:
    headers = world.login(world.new_account(Role.HEALTH_PRACTITIONER))
    token = headers["Authorization"].split()[1]
    return token, jwt.decode(token, options={"verify_signature": False})


def _b64(doc: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "forgery", ["alg_none", "tampered", "wrong_key", "wrong_audience", "expired", "garbage"]
)
def test_forged_or_stale_tokens_are_refused(world: World, forgery: str) -> None:
    token, claims = _token(world)
    secret = world.ctx.keyring.token_secret
    if forgery == "alg_none":
        token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    elif forgery == "tampered":
        head, _, sig = token.split(".")
        token = f"{head}.{_b64({**claims, 'sub': '1'})}.{sig}"
    elif forgery == "wrong_key":
        token = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    elif forgery == "wrong_audience":
        token = jwt.encode({**claims, "aud": "someone-else"}, secret, algorithm="HS256")
    elif forgery == "expired":
        token = jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256")
    else:
        token = "not.a.token"
    response = world.client.post(ME, json=SEARCH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"invalid_token", "token_expired"}


def test_missing_credentials_are_refused(world: World) -> None:
    response = world.client.post(ME, json=SEARCH)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_logout_ends_the_token_at_once(world: World) -> None:
    headers = world.login(world.new_account(Role.HEALTH_PRACTITIONER))
    assert world.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    response = world.client.post(ME, json=SEARCH, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_ended"


def test_suspension_takes_effect_on_the_next_request(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    headers = world.login(account)
    admin = world.headers(Role.SYSTEM_ADMINISTRATOR)
    change = world.client.patch(
        f"/api/v1/users/{account.id}", json={"status": "suspended"}, headers=admin
    )
    assert change.status_code == 200
    response = world.client.post(ME, json=SEARCH, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_suspended"
    world.clock.advance(31)
    # Its right password now answers as a wrong one would (test_suspended_right_password_...).
    relogin = _login(world, account.username, account.password, world.otp(account))
    assert relogin.status_code == 401
    assert relogin.json()["error"]["code"] == "invalid_credentials"


def test_role_change_ends_existing_sessions(world: World) -> None:
    account = world.new_account(Role.SOCIAL_CARE_PRACTITIONER)
    headers = world.login(account)
    admin = world.headers(Role.SYSTEM_ADMINISTRATOR)
    world.client.patch(
        f"/api/v1/users/{account.id}", json={"role": "voluntary_practitioner"}, headers=admin
    )
    response = world.client.post(ME, json=SEARCH, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_ended"


def test_only_system_administrators_manage_accounts(world: World) -> None:
    body = {
        "username": "new.user.x",
        "display_name": "X",
        "role": "la_data_manager",
        "organisation_id": world.orgs[(LA_A, next(iter(world.orgs))[1])],
    }
    denied = world.client.post(
        "/api/v1/users", json=body, headers=world.headers(Role.LA_DATA_MANAGER)
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    made = world.client.post(
        "/api/v1/users", json=body, headers=world.headers(Role.SYSTEM_ADMINISTRATOR)
    )
    assert made.status_code == 201
    assert made.json()["enrolment_code"]
    assert "totp_secret" not in made.json()
    again = world.client.post(
        "/api/v1/users", json=body, headers=world.headers(Role.SYSTEM_ADMINISTRATOR)
    )
    assert again.status_code == 409


def test_logins_are_audited_with_typed_tags(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    _login(world, account.username, "wrong", "000000")
    world.login(account)
    with world.ctx.sessions() as db:
        tags = db.scalars(
            select(AuditEvent.tag).where(AuditEvent.actor_id == account.id).order_by(AuditEvent.id)
        ).all()
    assert tags == [EventTag.AUTH_LOGIN_FAILED, EventTag.AUTH_LOGIN_SUCCEEDED]


def test_a_refused_login_is_audited_once(world: World) -> None:
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    admin = world.headers(Role.SYSTEM_ADMINISTRATOR)
    world.client.patch(f"/api/v1/users/{account.id}", json={"status": "suspended"}, headers=admin)
    refused = _login(world, account.username, account.password, world.otp(account))
    assert refused.json()["error"]["code"] == "invalid_credentials"
    with world.ctx.sessions() as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.request_id == refused.headers["x-request-id"])
        ).all()
    assert [(e.tag, e.actor_id) for e in events] == [("auth:login:failed", account.id)]


# Each control switched off (a development build) lets its abuse through. ---------------------


def test_with_login_lockout_off_failures_are_counted_but_never_lock(world: World) -> None:
    """On: test_account_locks_after_repeated_failures_even_for_unknown_names,
    test_source_locks_after_failures_across_many_accounts."""
    with strict_world(world, off=[Control.LOGIN_LOCKOUT]) as w:
        account = w.new_account(Role.HEALTH_PRACTITIONER)
        settings = w.ctx.settings
        for _ in range(settings.login_max_failures_account + 2):
            assert _login(w, account.username, "wrong", "000000").status_code == 401
        for n in range(settings.login_max_failures_source + 2):
            assert _login(w, f"stuffing.{n}", "password1", "000000").status_code == 401
        assert _login(w, account.username, account.password, w.otp(account)).status_code == 200
        with w.ctx.sessions() as db:
            source = repository.throttle(db, f"source:{w.source}")
        assert source is not None
        assert source.failures > settings.login_max_failures_source
        assert source.locked_until is None
        assert _failures(w, account.id) == settings.login_max_failures_account + 2


def test_with_otp_single_use_off_a_replayed_code_logs_in_again(world: World) -> None:
    """On: test_a_one_time_code_cannot_be_replayed."""
    with strict_world(world, off=[Control.OTP_SINGLE_USE]) as w:
        account = w.new_account(Role.HEALTH_PRACTITIONER)
        code = w.otp(account)
        first = _login(w, account.username, account.password, code)
        replay = _login(w, account.username, account.password, code)
        assert first.status_code == replay.status_code == 200
        assert first.json()["access_token"] != replay.json()["access_token"]
        headers = {"Authorization": f"Bearer {replay.json()['access_token']}"}
        assert w.client.post(ME, json=SEARCH, headers=headers).status_code == 200


@pytest.mark.parametrize("forgery", ["alg_none", "wrong_key", "wrong_audience", "expired"])
def test_with_token_checks_off_forged_and_expired_tokens_get_in(world: World, forgery: str) -> None:
    """On: test_forged_or_stale_tokens_are_refused."""
    with strict_world(world, off=[Control.TOKEN_CHECKS]) as w:
        token, claims = _token(w)
        if forgery == "alg_none":
            token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
        elif forgery == "wrong_key":
            token = jwt.encode(claims, b"k" * 32, algorithm="HS256")
        elif forgery == "wrong_audience":
            forged = {**claims, "aud": "someone-else", "iss": "someone-else"}
            token = jwt.encode(forged, w.ctx.keyring.token_secret, algorithm="HS256")
        else:
            # The token and its session both long past their end.
            w.clock.advance(w.ctx.settings.token_ttl_seconds + 60)
        response = w.client.post(ME, json=SEARCH, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text


def test_with_token_checks_off_the_session_is_still_looked_up(world: World) -> None:
    """Off, the claims are trusted as sent, but they must still name a live session."""
    with strict_world(world, off=[Control.TOKEN_CHECKS]) as w:
        _, claims = _token(w)
        for forged in ({**claims, "sid": "no-such-session"}, {**claims, "sub": "1"}):
            token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(forged) + "."
            response = w.client.post(ME, json=SEARCH, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_session"
        no_sid = {k: v for k, v in claims.items() if k != "sid"}
        token = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(no_sid) + "."
        response = w.client.post(ME, json=SEARCH, headers={"Authorization": f"Bearer {token}"})
        assert response.json()["error"]["code"] == "invalid_token"


def test_with_session_revocation_off_ended_sessions_still_work(world: World) -> None:
    """On: test_logout_ends_the_token_at_once, test_suspension_takes_effect_on_the_next_request,
    test_role_change_ends_existing_sessions."""
    # Administrator separation off too: else the administrator's re-role waits for a data
    # manager's confirmation, and the demoted token is refused for that instead.
    with strict_world(world, off=[Control.SESSION_REVOCATION, Control.ADMIN_SEPARATION]) as w:
        admin = w.login(w.new_account(Role.SYSTEM_ADMINISTRATOR))
        logged_out = w.login(w.new_account(Role.HEALTH_PRACTITIONER))
        assert w.client.post("/api/v1/auth/logout", headers=logged_out).status_code == 204
        suspended = w.new_account(Role.HEALTH_PRACTITIONER)
        suspended_headers = w.login(suspended)
        change = w.client.patch(
            f"/api/v1/users/{suspended.id}", json={"status": "suspended"}, headers=admin
        )
        assert change.status_code == 200
        demoted = w.new_account(Role.SOCIAL_CARE_PRACTITIONER)
        demoted_headers = w.login(demoted)
        change = w.client.patch(
            f"/api/v1/users/{demoted.id}", json={"role": "voluntary_practitioner"}, headers=admin
        )
        assert change.status_code == 200
        for headers in (logged_out, suspended_headers, demoted_headers):
            assert w.client.post(ME, json=SEARCH, headers=headers).status_code == 200
        # A new login of a suspended account is still refused: only the old token lives on.
        w.clock.advance(31)
        relogin = _login(w, suspended.username, suspended.password, w.otp(suspended))
        assert relogin.status_code == 401
        assert relogin.json()["error"]["code"] == "invalid_credentials"


def _guessing_alerts(world: World, user_id: int) -> list[tuple[str, int]]:
    from reference_app.alerts.models import Alert

    with world.ctx.sessions() as db:
        query = select(Alert.kind, Alert.local_authority_id).where(
            Alert.kind == "credential_guessing", Alert.subject_user_id == user_id
        )
        return [(kind, la) for kind, la in db.execute(query)]


def test_guessing_one_account_from_many_addresses_alerts_its_la_without_locking_it(
    world: World,
) -> None:
    """Each address stays under its own limits; together they reach the account's alert."""
    threshold = world.ctx.settings.login_guessing_alert_failures
    account = world.new_account(Role.HEALTH_PRACTITIONER)
    for n in range(threshold - 1):
        guesser = _from(world, f"198.51.100.{n + 20}")
        assert _attempt(guesser, account.username, f"guess-{n}", "000000").status_code == 401
    assert _guessing_alerts(world, account.id) == []
    last = _from(world, "203.0.113.99")
    assert _attempt(last, account.username, "one-more", "000000").status_code == 401
    employer = world.la_ids[account.la]
    assert _guessing_alerts(world, account.id) == [("credential_guessing", employer)]
    # One alert a window, and the practitioner still logs in from their own address.
    assert _attempt(last, account.username, "and-another", "000000").status_code == 401
    assert len(_guessing_alerts(world, account.id)) == 1
    assert _login(world, account.username, account.password, world.otp(account)).status_code == 200
