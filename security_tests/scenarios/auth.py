"""Authentication: lock-outs, one-time codes, token integrity, revocation, and login failures that
reveal nothing.

Failed logins are budgeted: the registry locks a source address out after 20 failures in 15
minutes, and the harness runs from one address. The scenarios here use at most 16 failures before
the credential-stuffing scenario, which runs last (order 90) and spends the rest on purpose. The
lock-out denial scenario spends its failures from a second loopback address.
"""

from __future__ import annotations

import binascii
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from security_tests import timing
from security_tests.context import (
    SYSADMIN,
    Caller,
    Context,
    expect_error,
    refusal,
    status_text,
)
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.scenarios._common import altered, decode_segment, encode_segment
from security_tests.target import API, TOTP_STEP, Account

PRACTITIONER = "health_practitioner"
# The reference registry locks an account after 5 failures: the 6th attempt must be refused.
ACCOUNT_ATTEMPTS = 6
# ... and a source after 20 failures in 15 minutes: the 21st attempt at the latest.
SOURCE_ATTEMPTS = 21
# Samples of each kind of failed login whose timing is compared in a round (4 + 4 failures of
# the budget), and the rounds: a second only when the first differs (see security_tests.timing).
TIMING_SAMPLES = 4
TIMING_ROUNDS = 2
# The fastest of each kind may differ by this fraction of the slower one, or this many seconds,
# whichever is more: skipping the password hash for unknown users shows as a multiple, not a
# fraction. The fastest, not the median: a busy machine only ever adds time, and with four samples
# one slow moment moved the median by a quarter (seen in CI: 57 against 84 ms).
TIMING_RATIO = 0.25
TIMING_FLOOR = 0.003
# A bearer token must die within an hour (ASVS 7.3.2: an absolute session lifetime).
MAX_TOKEN_SECONDS = 3600
# Algorithms a pinned verifier may name; "none" and unknown names are not among them.
SIGNED_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES384", "ES512", "EdDSA"}
)
TEN_YEARS = 10 * 365 * 86400


# -- helpers -------------------------------------------------------------------------------------


def _wrong_code(account: Account | None = None) -> str:
    """A well-formed one-time code that no step near now accepts for ``account``."""
    near: set[str] = set()
    if account is not None:
        totp = pyotp.TOTP(account.totp_secret, interval=TOTP_STEP)
        step = int(time.time()) // TOTP_STEP
        near = {totp.at((step + d) * TOTP_STEP) for d in (-1, 0, 1, 2)}
    while True:
        code = f"{secrets.randbelow(1_000_000):06d}"
        if code not in near:
            return code


def _unknown_username() -> str:
    """A username no registry holds."""
    return f"sec-nobody-{secrets.token_hex(5)}"


def _bearer(ctx: Context, token: str) -> httpx.Response:
    """Ask who the bearer of ``token`` is (the cheapest authenticated route)."""
    return ctx.http.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})


def _still_works(ctx: Context, caller: Caller) -> None:
    """Fail unless the caller's token works before the scenario acts on it."""
    me = _bearer(ctx, caller.token)
    expect(me.status_code == 200, f"a fresh session's token answered {me.status_code} at once")


@dataclass(frozen=True)
class Jwt:
    """A JSON Web Token taken apart (read, never verified)."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: str
    signature: str

    def with_claims(self, **changes: Any) -> str:
        """The same header and signature over changed claims (None removes a claim)."""
        claims = {k: v for k, v in {**self.claims, **changes}.items() if v is not None}
        header = self.signing_input.split(".", 1)[0]  # as issued, byte for byte
        return f"{header}.{encode_segment(claims)}.{self.signature}"

    def unsigned(self, alg: str) -> str:
        """The same claims under header ``alg`` with no signature."""
        header = {**self.header, "alg": alg}
        return f"{encode_segment(header)}.{self.signing_input.split('.', 1)[1]}."

    def bad_signature(self) -> str:
        """The same header and claims with one signature character changed."""
        return f"{self.signing_input}.{altered(self.signature)}"


def _jwt(token: str) -> Jwt:
    """Take a bearer token apart, or skip: an opaque token offers nothing to tamper with."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Skip("the target's bearer tokens are opaque, not JWTs: nothing to tamper with")
    try:
        header = decode_segment(parts[0])
        claims = decode_segment(parts[1])
    except (ValueError, binascii.Error):
        raise Skip("the target's bearer tokens are not JSON Web Tokens") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Skip("the target's bearer tokens are not JSON Web Tokens")
    return Jwt(header, claims, f"{parts[0]}.{parts[1]}", parts[2])


def _all_refused(ctx: Context, forged: dict[str, str]) -> None:
    """Fail unless every forged token in ``forged`` (by description) is refused with 401."""
    accepted = []
    for what, token in forged.items():
        response = _bearer(ctx, token)
        ctx.note(f"{what}: {status_text(response)}")
        if response.status_code != 401:
            accepted.append(f"{what} ({response.status_code})")
    expect(not accepted, "forged tokens were not refused with 401: " + ", ".join(accepted))


def _attempts_until_locked(attempts: int, attempt: Callable[[], httpx.Response]) -> int | None:
    """Make up to ``attempts`` failing logins; the number of the one locked out (429), if any.

    Each answer before the lock-out must be a plain 401 in the envelope, and the lock-out itself
    429 ``too_many_attempts``.
    """
    for n in range(1, attempts + 1):
        response = attempt()
        if response.status_code == 429:
            expect_error(response, 429, "too_many_attempts")
            return n
        expect_error(response, 401)
    return None


def _expect_right_login_refused(ctx: Context, account: Account, message: str) -> None:
    """Fail with ``message`` unless the right password and a valid code are refused as locked."""
    right = ctx.attempt_login(account.username, account.password, ctx.target.otp(account))
    expect(right.status_code != 200, message)
    expect_error(right, 429, "too_many_attempts")


# -- lock-outs and one-time codes ----------------------------------------------------------------


@scenario(
    "auth.brute-force-lockout",
    owasp=["API2:2023"],
    asvs=["6.3.1"],
    severity=Severity.HIGH,
    guards=["login_lockout"],
)
def brute_force_lockout(ctx: Context) -> None:
    """Repeated wrong passwords lock the account, and then even the right password is refused."""
    account = ctx.new_account(PRACTITIONER)
    wrong = _wrong_code(account)
    locked_at = _attempts_until_locked(
        ACCOUNT_ATTEMPTS,
        lambda: ctx.attempt_login(account.username, "not-" + account.password, wrong),
    )
    expect(
        locked_at is not None,
        f"{ACCOUNT_ATTEMPTS} wrong passwords in a row for one account and no lock-out (429)",
    )
    ctx.note(f"locked out at attempt {locked_at}")
    _expect_right_login_refused(
        ctx, account, "the locked account logged in with its right password and a valid code"
    )


@scenario(
    "auth.otp-single-use",
    owasp=["API2:2023"],
    asvs=["6.5.1"],
    severity=Severity.HIGH,
    guards=["otp_single_use"],
)
def otp_single_use(ctx: Context) -> None:
    """A one-time code that logged in once is refused when replayed within its time step."""
    account = ctx.new_account(PRACTITIONER)
    code = ctx.target.otp(account)
    first = ctx.attempt_login(account.username, account.password, code)
    expect(first.status_code == 200, f"the first login answered {first.status_code}")
    # Replayed at once: the code is still inside its 30 s step and the drift window.
    replay = ctx.attempt_login(account.username, account.password, code)
    expect(replay.status_code != 200, "a replayed one-time code logged in a second time")
    expect_error(replay, 401)


@scenario(
    "auth.failures-indistinguishable",
    owasp=["API2:2023"],
    asvs=["6.3.8"],
    severity=Severity.MEDIUM,
    gap="unknown users cost the same dummy password hash by design; no switch changes the answer",
)
def failures_indistinguishable(ctx: Context) -> None:
    """A wrong password and an unknown username get the same answer in about the same time."""
    timings: dict[str, list[float]] = {"wrong password": [], "unknown user": []}
    answers: dict[str, set[tuple[int, str | None, str | None]]] = {k: set() for k in timings}
    for round_ in range(1, TIMING_ROUNDS + 1):
        # A fresh account a round: four wrong passwords stay under its lock-out. And a source
        # address of its own (TEST-NET-2) where the target trusts the harness as a proxy, so
        # the rounds' failures do not spend the harness's own per-source budget.
        account = ctx.new_account(PRACTITIONER)
        source = f"198.51.100.{secrets.randbelow(200) + 20}"
        wrong = _wrong_code(account)
        # Interleaved, so a slow moment of the server falls on both kinds alike.
        for _ in range(TIMING_SAMPLES):
            for kind in timings:
                username = account.username if kind == "wrong password" else _unknown_username()
                began = time.perf_counter()
                response = ctx.attempt_login(
                    username, "not-" + account.password, wrong, forwarded_for=source
                )
                timings[kind].append(time.perf_counter() - began)
                expect_error(response, 401)
                error = response.json()["error"]
                answers[kind].add((response.status_code, error.get("code"), error.get("message")))
        expect(
            answers["wrong password"] == answers["unknown user"],
            f"the answers differ: wrong password {sorted(answers['wrong password'], key=str)}, "
            f"unknown user {sorted(answers['unknown user'], key=str)}",
        )
        verdict = timing.judge(
            timings["wrong password"],
            timings["unknown user"],
            ratio=TIMING_RATIO,
            floor=TIMING_FLOOR,
        )
        said = verdict.describe("wrong password", "unknown user", "fastest")
        ctx.note(f"round {round_}: {said}")
        if verdict.outcome == "same":
            return
        expect(verdict.outcome != "differs", f"timing tells an existing account apart: {said}")
    raise timing.Inconclusive(f"inconclusive: the machine was too noisy to judge ({said})")


@scenario(
    "auth.credential-stuffing",
    owasp=["API2:2023", "API4:2023"],
    asvs=["6.3.1"],
    severity=Severity.HIGH,
    guards=["login_lockout"],
    order=90,
)
def credential_stuffing(ctx: Context) -> None:
    """Failed logins for many usernames from one source lock that source out, for every account."""
    # Made before the source is locked out: the account must exist to try its right password.
    account = ctx.new_account(PRACTITIONER)
    wrong = _wrong_code()
    locked_at = _attempts_until_locked(
        SOURCE_ATTEMPTS,
        # A new name each time: only a lock-out of the source can stop these.
        lambda: ctx.attempt_login(_unknown_username(), secrets.token_urlsafe(12), wrong),
    )
    expect(
        locked_at is not None,
        f"{SOURCE_ATTEMPTS} failed logins for {SOURCE_ATTEMPTS} usernames from one source and "
        "no lock-out (429)",
    )
    ctx.note(f"source locked out at attempt {locked_at} of this scenario")
    _expect_right_login_refused(
        ctx, account, "an account logged in with its right password from the locked-out source"
    )


def _answer(response: httpx.Response) -> tuple[int, str | None, str | None]:
    """What a refusal tells the caller: status, error code and message (not the request id)."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return response.status_code, error.get("code"), error.get("message")


def _second_source(ctx: Context) -> str:
    """A loopback address other than the harness's own, or skip: only a target on this
    machine's loopback can be reached from a second address without a proxy."""
    host = httpx.URL(ctx.target.url).host
    try:
        loopback = (
            ipaddress.ip_address(host).version == 4 and ipaddress.ip_address(host).is_loopback
        )
    except ValueError:
        loopback = False
    if not loopback:
        raise Skip("a second source address needs a target on 127.0.0.1 (none offered here)")
    while True:
        octets = (secrets.randbelow(254) + 1, secrets.randbelow(256), secrets.randbelow(254) + 1)
        address = "127.{}.{}.{}".format(*octets)
        if address != host:
            return address


@scenario(
    "auth.lockout-denial",
    owasp=["API2:2023", "API4:2023"],
    asvs=["6.3.1"],
    severity=Severity.HIGH,
    guards=["lockout_per_source", "login_lockout"],
)
def lockout_denial(ctx: Context) -> None:
    """Wrong logins for a practitioner from an attacker's address lock that address out, but do
    not stop the practitioner logging in from their own."""
    victim = ctx.new_account(PRACTITIONER)
    wrong = _wrong_code(victim)
    address = _second_source(ctx)
    with ctx.from_source(address) as attacker:
        locked_at = _attempts_until_locked(
            ACCOUNT_ATTEMPTS,
            lambda: attacker.post(
                f"{API}/auth/login",
                json={
                    "username": victim.username,
                    "password": "not-" + victim.password,
                    "otp": wrong,
                },
            ),
        )
    expect(
        locked_at is not None,
        f"{ACCOUNT_ATTEMPTS} wrong passwords for one account from {address} and no lock-out (429)",
    )
    ctx.note(f"the attacker's address {address} was locked out at attempt {locked_at}")
    own = ctx.attempt_login(victim.username, victim.password, ctx.target.otp(victim))
    expect(
        own.status_code == 200,
        f"after wrong logins from another address, the practitioner's own login from the "
        f"harness's address answered {status_text(own)}: anyone who knows a username can lock "
        "its practitioner out",
    )


@scenario(
    "auth.refusal-oracles",
    owasp=["API2:2023", "API1:2023"],
    asvs=["6.3.8", "8.2.2"],
    severity=Severity.MEDIUM,
    guards=["uniform_refusals"],
)
def refusal_oracles(ctx: Context) -> None:
    """A refusal reveals nothing: a suspended account's right password answers as a wrong one,
    and someone else's involvement id as a missing one."""
    account = ctx.new_account(PRACTITIONER)
    suspended = ctx.admin().patch(f"/users/{account.id}", json={"status": "suspended"})
    expect(suspended.status_code == 200, f"suspending an account answered {status_text(suspended)}")
    right = ctx.attempt_login(account.username, account.password, ctx.target.otp(account))
    wrong = ctx.attempt_login(account.username, "not-" + account.password, _wrong_code(account))
    expect(right.status_code != 200, "a suspended account logged in with its right password")
    expect(
        _answer(right) == _answer(wrong),
        f"a suspended account's right password answers {_answer(right)}, a wrong one "
        f"{_answer(wrong)}: the answer confirms the password",
    )
    ctx.note(f"suspended account, right and wrong password: {refusal(right)}")
    child = ctx.new_child()
    owner = ctx.fresh(PRACTITIONER)
    involvement = ctx.involve(owner, child)
    intruder = ctx.fresh(PRACTITIONER)
    change = {"lead_professional": True}
    theirs = intruder.patch(f"/involvements/{involvement}", json=change)
    missing = intruder.patch(f"/involvements/{2_000_000_000 + involvement}", json=change)
    expect(not theirs.is_success, f"another's involvement was changed: {status_text(theirs)}")
    expect(
        _answer(theirs) == _answer(missing),
        f"someone else's involvement answers {_answer(theirs)}, a missing one "
        f"{_answer(missing)}: the answer confirms the id exists",
    )
    ctx.note(f"another's and a missing involvement: {refusal(theirs)}")


# -- tokens --------------------------------------------------------------------------------------


@scenario(
    "auth.token-claims",
    owasp=["API2:2023"],
    asvs=["9.1.2", "9.2.1", "9.2.3", "7.3.2"],
    severity=Severity.MEDIUM,
    gap="what an issued token says is fixed at issue; no switch changes it",
)
def token_claims(ctx: Context) -> None:
    """Issued tokens name a signing algorithm, audience and issuer, and live an hour at most."""
    account = ctx.new_account(PRACTITIONER)
    response = ctx.attempt_login(account.username, account.password, ctx.target.otp(account))
    expect(response.status_code == 200, f"login answered {response.status_code}")
    body = response.json()
    token = _jwt(str(body["access_token"]))
    alg = token.header.get("alg")
    expect(alg in SIGNED_ALGORITHMS, f"the token names algorithm {alg!r}, not a signing one")
    missing = [c for c in ("exp", "iat", "aud", "iss", "sub") if c not in token.claims]
    expect(not missing, f"the token lacks claims: {', '.join(missing)}")
    lifetime = int(token.claims["exp"]) - int(token.claims["iat"])
    ctx.note(f"alg {alg}, lifetime {lifetime} s, expires_in {body.get('expires_in')}")
    expect(
        0 < lifetime <= MAX_TOKEN_SECONDS,
        f"the token lives {lifetime} s (exp - iat), more than {MAX_TOKEN_SECONDS} s",
    )
    left = int(token.claims["exp"]) - time.time()
    expect(
        left <= MAX_TOKEN_SECONDS + 60,
        f"the token expires in {left:.0f} s by this machine's clock",
    )
    expires_in = body.get("expires_in")
    expect(
        isinstance(expires_in, int) and abs(expires_in - lifetime) <= 5,
        f"expires_in {expires_in} does not match the token's own lifetime of {lifetime} s",
    )


@scenario(
    "auth.token-tampered",
    owasp=["API2:2023"],
    asvs=["9.1.1", "9.2.1"],
    severity=Severity.CRITICAL,
    guards=["token_checks"],
)
def token_tampered(ctx: Context) -> None:
    """A token with a changed claim or a broken signature is refused."""
    me = ctx.fresh(PRACTITIONER)
    _still_works(ctx, me)
    token = _jwt(me.token)
    exp = int(token.claims.get("exp", time.time()))
    # A black box cannot sign, so it cannot make a genuinely expired token; moving exp with the
    # signature kept shows the claims are verified, and auth.token-claims bounds the lifetime.
    _all_refused(
        ctx,
        {
            "exp moved ten years on, signature kept": token.with_claims(exp=exp + TEN_YEARS),
            "exp moved into the past, signature kept": token.with_claims(exp=exp - TEN_YEARS),
            "jti changed, signature kept": token.with_claims(jti=secrets.token_hex(8)),
            "signature altered": token.bad_signature(),
            "signature removed": f"{token.signing_input}.",
        },
    )


@scenario(
    "auth.token-alg-none",
    owasp=["API2:2023"],
    asvs=["9.1.2"],
    severity=Severity.CRITICAL,
    guards=["token_checks"],
)
def token_alg_none(ctx: Context) -> None:
    """An unsigned token (algorithm "none", in any spelling) is refused."""
    me = ctx.fresh(PRACTITIONER)
    _still_works(ctx, me)
    token = _jwt(me.token)
    _all_refused(
        ctx, {f'alg "{alg}", no signature': token.unsigned(alg) for alg in ("none", "None", "NONE")}
    )


@scenario(
    "auth.token-wrong-audience",
    owasp=["API2:2023"],
    asvs=["9.2.3"],
    severity=Severity.HIGH,
    guards=["token_checks"],
)
def token_wrong_audience(ctx: Context) -> None:
    """A token meant for another audience or from another issuer is refused."""
    me = ctx.fresh(PRACTITIONER)
    _still_works(ctx, me)
    token = _jwt(me.token)
    # Only the issuer can sign for another audience: these keep the original signature, so a
    # registry that checks signatures refuses them either way, and one that checks neither
    # signature nor audience is caught.
    _all_refused(
        ctx,
        {
            "aud of another service": token.with_claims(aud="https://attacker.example/api"),
            "aud as a list naming another service": token.with_claims(aud=["another-service"]),
            "aud removed": token.with_claims(aud=None),
            "iss of another issuer": token.with_claims(iss="https://attacker.example"),
        },
    )


# -- revocation ----------------------------------------------------------------------------------


def _refused_at_once(ctx: Context, token: str, after: str) -> None:
    """Fail unless ``token`` is refused on its very next use."""
    response = _bearer(ctx, token)
    expect(
        response.status_code in (401, 403),
        f"the token still works after {after}: {response.status_code}",
    )
    expect_error(response, (401, 403))
    ctx.note(f"after {after}: {status_text(response)}")


@scenario(
    "auth.revoked-at-logout",
    owasp=["API2:2023"],
    asvs=["7.4.1"],
    severity=Severity.HIGH,
    guards=["session_revocation"],
)
def revoked_at_logout(ctx: Context) -> None:
    """A token stops working the moment its session logs out."""
    me = ctx.fresh(PRACTITIONER)
    _still_works(ctx, me)
    out = me.logout()
    expect(out.status_code in (200, 204), f"logout answered {out.status_code}")
    _refused_at_once(ctx, me.token, "logout")


@scenario(
    "auth.revoked-at-suspension",
    owasp=["API2:2023", "API5:2023"],
    asvs=["7.4.2", "8.3.2"],
    severity=Severity.CRITICAL,
    guards=["session_revocation"],
)
def revoked_at_suspension(ctx: Context) -> None:
    """A suspended account's token stops working at once."""
    me = ctx.fresh(PRACTITIONER)
    _still_works(ctx, me)
    change = ctx.caller(SYSADMIN).patch(f"/users/{me.account.id}", json={"status": "suspended"})
    expect(change.status_code == 200, f"suspending the account answered {change.status_code}")
    _refused_at_once(ctx, me.token, "suspension")


@scenario(
    "auth.revoked-at-role-change",
    owasp=["API2:2023", "API5:2023"],
    asvs=["8.3.2"],
    severity=Severity.HIGH,
    guards=["session_revocation"],
)
def revoked_at_role_change(ctx: Context) -> None:
    """A token issued before a role change stops working at once."""
    me = ctx.fresh(PRACTITIONER)
    _still_works(ctx, me)
    change = ctx.caller(SYSADMIN).patch(
        f"/users/{me.account.id}", json={"role": "education_practitioner"}
    )
    expect(change.status_code == 200, f"changing the role answered {change.status_code}")
    role = change.json().get("role")
    expect(role == "education_practitioner", f"the role change did not take: {role!r}")
    _refused_at_once(ctx, me.token, "a role change")


@scenario(
    "auth.credential-custody",
    owasp=["API2:2023"],
    asvs=["6.4.1", "6.2.2"],
    severity=Severity.HIGH,
    guards=["credential_custody"],
    background=True,
)
def credential_custody(ctx: Context) -> None:
    """Whoever creates an account never learns its password or TOTP secret; the user sets them."""
    username, template, response = ctx.create_account(PRACTITIONER)
    if response.status_code != 201:
        raise Skip(f"cannot create an account: {status_text(response)}")
    body = response.json()
    leaked = [field for field in ("password", "totp_secret") if body.get(field)]
    expect(
        not leaked,
        "the account creation answer hands the administrator the new user's "
        + " and ".join(leaked),
    )
    code = body.get("enrolment_code")
    expect(isinstance(code, str) and bool(code), "the creation answer holds no enrolment code")
    password = secrets.token_urlsafe(18)
    enrolled = ctx.enrol(username, str(code), password)
    expect(enrolled.status_code == 200, f"enrolling answered {status_text(enrolled)}")
    secret = enrolled.json().get("totp_secret")
    expect(isinstance(secret, str) and bool(secret), "enrolment returned no TOTP secret")
    replay = ctx.enrol(username, str(code), secrets.token_urlsafe(18))
    expect_error(replay, (400, 401, 403, 409, 410))
    ctx.note(f"a second enrolment with the same code: {status_text(replay)}")
    account = Account(
        username=username,
        password=password,
        totp_secret=str(secret),
        role=PRACTITIONER,
        local_authority=template.local_authority,
        organisation=template.organisation,
        id=body.get("id"),
        organisation_id=template.organisation_id,
        local_authority_id=template.local_authority_id,
        throwaway=True,
    )
    me = ctx.login(account)
    new_password = secrets.token_urlsafe(18)
    change = me.post(
        "/auth/password",
        json={
            "current_password": password,
            "otp": ctx.target.otp(account),
            "new_password": new_password,
        },
    )
    expect(
        change.status_code in (200, 204), f"changing the password answered {status_text(change)}"
    )
    account.password = new_password
    ctx.login(account)
    ctx.note("the user enrolled with a one-time code, then changed their own password")
