"""What a scenario works with: a recording HTTP client, callers, throwaway accounts and children.

Every request a scenario makes goes through one `httpx.Client` whose hooks record the exchange
(redacted) as evidence. Shared personas log in once per run; a scenario that locks, suspends,
logs out or changes an account makes a throwaway one through the system administrator persona
(`POST /users`, enrolled with its one-time code and, when its role waits for one, confirmed by
a data manager persona of its authority), so scenarios never spoil each other. Throwaway
colleagues and outsiders are made in (or outside) a persona's local authority, and alerts are
polled for as the management team sees them, with the delay noted.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import httpx

from security_tests.engine import Finding, Skip, expect
from security_tests.evidence import Evidence, Stopwatch
from security_tests.target import API, Account, Target, TargetError, TargetLoginBroken

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from security_tests.engine import Scenario

T = TypeVar("T")
# An alert as GET /alerts lists it.
Alert = dict[str, Any]

SYSADMIN = "system_administrator"
DATA_MANAGER = "la_data_manager"
# The error code of a target refusing a client address its requests a minute: the harness is one
# address, standing in for many practitioners' networks (docs/assure.md).
SOURCE_THROTTLED = "source_rate_limited"
# Syllables for family names no real family has, so a search finds only the harness's child.
_SYLLABLES = ("quor", "vex", "zal", "thry", "quin", "xor", "vyl", "zeph", "qua", "xan")
_GIVEN = ("Ada", "Bram", "Cleo", "Dov", "Esme", "Finn", "Gus", "Hal", "Ivo", "Juno")


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def error_code(response: httpx.Response) -> str | None:
    """The stable code of an error envelope, or None when the body is not one."""
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def refusal(response: httpx.Response) -> tuple[int, str | None]:
    """The status and error code of an answer (code None when it is not an error envelope)."""
    return response.status_code, error_code(response)


def status_text(response: httpx.Response) -> str:
    """The status and, for a refusal, its code: "403 permission_denied"."""
    code = error_code(response)
    return f"{response.status_code} {code}" if code else str(response.status_code)


def expect_error(
    response: httpx.Response, status: int | tuple[int, ...], code: str | None = None
) -> None:
    """Fail unless ``response`` is a refusal with ``status`` (and ``code``), in the envelope."""
    wanted = (status,) if isinstance(status, int) else status
    expect(
        response.status_code in wanted,
        f"{response.request.method} {response.request.url.path} answered "
        f"{status_text(response)}, expected {'/'.join(map(str, wanted))}"
        + (f" {code}" if code else ""),
    )
    got = error_code(response)
    expect(got is not None, f"the {response.status_code} answer is not in the error envelope")
    if code is not None:
        expect(got == code, f"the refusal's code is {got!r}, expected {code!r}")


def cannot(what: str, response: httpx.Response) -> NoReturn:
    """A set-up step was refused: skip the scenario, unless the server broke (a finding)."""
    if response.status_code >= 500:
        raise Finding(f"the target failed to {what}: {status_text(response)}")
    raise Skip(f"cannot {what}: {status_text(response)}")


def fictional_family_name() -> str:
    """A family name built from syllables no real family name uses.

    Five syllables give 100,000 names with as many distinct phonetic codes, so two children
    the harness registers on one date of birth almost never find each other in a search.
    """
    parts = [secrets.choice(_SYLLABLES) for _ in range(5)]
    return "".join(parts).capitalize()


def fictional_address(postcode: str | None = None, line1: str | None = None) -> dict[str, str]:
    """An address no real household has, and no other harness child: a house number of its
    own on an invented street, in a postcode area Royal Mail never uses (Q). Two harness
    children share an address, and so a household, only when a scenario asks for it."""
    code = postcode or f"Q{secrets.choice('ABCDEFGH')}{secrets.randbelow(90) + 1} 9ZZ"
    number = secrets.randbelow(90000) + 10000
    return {"line1": line1 or f"{number} Harness Row", "town": "Nowhere", "postcode": code}


@dataclass(frozen=True)
class Child:
    """A child the harness registered (all of it fictional)."""

    child_id: str
    given_name: str
    family_name: str
    date_of_birth: str
    postcode: str
    local_authority: str | None
    address_line: str = ""


class Caller:
    """An authenticated account, making requests through the scenario's recording client."""

    def __init__(self, ctx: Context, account: Account, token: str) -> None:
        self.ctx = ctx
        self.account = account
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        merged = {**self.headers, **(headers or {})}
        if reason:
            merged["X-Access-Reason"] = reason
        return self.ctx.http.request(method, API + path, headers=merged, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def view(self, child_id: str, reason: str = "safeguarding") -> httpx.Response:
        return self.get(f"/children/{child_id}", reason=reason)

    def search(self, **criteria: Any) -> httpx.Response:
        return self.post("/children/search", json=criteria)

    def logout(self) -> httpx.Response:
        response = self.post("/auth/logout")
        self.ctx.target.forget(self.account)
        return response

    def alerts(self, kind: str) -> list[Alert]:
        """The alerts of ``kind`` this caller (a management team) sees, newest first."""
        response = self.get("/alerts", params={"kind": kind, "limit": 100})
        expect(
            response.status_code == 200,
            f"the management team cannot list its alerts: GET /alerts answered "
            f"{response.status_code}",
        )
        body = response.json()
        return body if isinstance(body, list) else []


class Context:
    """One scenario's view of the target."""

    def __init__(self, target: Target, scenario: Scenario) -> None:
        self.target = target
        self.scenario = scenario
        self.evidence = Evidence()
        self._watch = Stopwatch()
        self.http = httpx.Client(
            base_url=target.url,
            timeout=target.timeout,
            verify=target.verify_tls,
            event_hooks={"request": [self._watch.start], "response": [self._record]},
        )
        self._engine: Engine | None = None
        # Whether the target refused the harness's own address for its traffic a minute
        # (``SOURCE_THROTTLED``): a scenario failing then may be failing on the harness's load.
        self.throttled = False

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()
        if self._engine is not None:
            self._engine.dispose()

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.evidence.record(response, self._watch.stop(response.request))
        if response.status_code == 429 and not self.throttled:
            self.throttled = error_code(response) == SOURCE_THROTTLED
        for observe in self.target.observers:
            observe(response)

    def note(self, text: str) -> None:
        """Add a line of explanation to the evidence."""
        self.evidence.note(text)

    # -- callers -------------------------------------------------------------------------------

    def persona(self, role: str, *, other_than: str | None = None) -> Account:
        """A shared persona of ``role`` (outside ``other_than``, a local authority), or skip."""
        try:
            return self.target.persona(role, other_than=other_than)
        except LookupError:
            where = f" outside {other_than}" if other_than else ""
            raise Skip(f"the personas file has no {role}{where}") from None

    def caller(self, role: str, *, other_than: str | None = None) -> Caller:
        """A shared persona of ``role``, logged in (once per run)."""
        account = self.persona(role, other_than=other_than)
        return Caller(self, account, self._token(account))

    def _token(self, account: Account) -> str:
        try:
            return self.target.token(self.http, account)
        except TargetLoginBroken as exc:
            raise Finding(str(exc)) from exc
        except TargetError as exc:
            raise Skip(str(exc)) from exc

    def login(self, account: Account) -> Caller:
        """Log ``account`` in afresh (a new session)."""
        try:
            return Caller(self, account, self.target.login(self.http, account))
        except TargetError as exc:
            raise Finding(str(exc)) from exc

    def create_account(
        self, role: str, *, like: Account | None = None, display_name: str | None = None
    ) -> tuple[str, Account, httpx.Response]:
        """Ask the system administrator persona to create an account of ``role`` in ``like``'s
        organisation; return its username, the template and the answer, whatever it is."""
        template = like or self.persona(role)
        admin = self.caller(SYSADMIN)
        if template.organisation_id is None:
            self._token(template)  # the first login learns the organisation from /auth/me
        if template.organisation_id is None:
            raise Skip("the target does not say a persona's organisation (GET /auth/me)")
        username = f"sec-{role.split('_')[0][:8]}-{secrets.token_hex(4)}"
        name = display_name or f"{secrets.choice(_GIVEN)} {fictional_family_name()}"
        response = admin.post(
            "/users",
            json={
                "username": username,
                "display_name": name,
                "role": role,
                "organisation_id": template.organisation_id,
                # RFC 2606 reserves example.org: the address reaches nobody.
                "email": f"{username}@example.org",
            },
        )
        return username, template, response

    def new_account(
        self,
        role: str,
        *,
        like: Account | None = None,
        display_name: str | None = None,
        confirm: bool = True,
    ) -> Account:
        """Create a throwaway account of ``role`` in ``like``'s organisation (not logged in).

        The harness enrols it as its user would (with the one-time code), and a data manager
        persona of its authority confirms a role that waits for one, unless ``confirm`` is off.
        """
        username, template, response = self.create_account(
            role, like=like, display_name=display_name
        )
        if response.status_code != 201:
            cannot(f"create a throwaway {role} account", response)
        body = response.json()
        password, totp_secret = self.credentials(username, body)
        account = Account(
            username=username,
            password=password,
            totp_secret=totp_secret,
            role=role,
            local_authority=template.local_authority,
            organisation=template.organisation,
            id=body["id"],
            organisation_id=template.organisation_id,
            local_authority_id=template.local_authority_id,
            throwaway=True,
        )
        if confirm and body.get("role_pending"):
            self.confirm_role(account)
        return account

    def credentials(self, username: str, created: dict[str, Any]) -> tuple[str, str]:
        """The new account's password and TOTP secret: from the creation answer (a target that
        hands them to the administrator), or by enrolling as its user with the one-time code."""
        if created.get("password") and created.get("totp_secret"):
            return str(created["password"]), str(created["totp_secret"])
        code = created.get("enrolment_code")
        if not code:
            raise Skip(
                "the account creation answer holds neither credentials nor an enrolment code"
            )
        password = secrets.token_urlsafe(18)
        response = self.enrol(username, str(code), password)
        if response.status_code != 200:
            cannot("enrol a throwaway account", response)
        return password, str(response.json()["totp_secret"])

    def enrol(self, username: str, code: str, password: str) -> httpx.Response:
        """Enrol a new account with its one-time code (no bearer token: the user is not in)."""
        return self.http.post(
            f"{API}/auth/enrol",
            json={"username": username, "enrolment_code": code, "password": password},
        )

    def confirm_role(self, account: Account) -> None:
        """Have a data manager persona of the account's authority confirm its pending role."""
        manager = self.persona_in(DATA_MANAGER, account.local_authority)
        if manager is None:
            raise Skip(f"no data manager persona in {account.local_authority} confirms roles")
        caller = Caller(self, manager, self._token(manager))
        response = caller.post(f"/users/{account.id}/confirm-role")
        if response.status_code != 200:
            cannot(f"confirm a throwaway {account.role} account's role", response)

    def fresh(
        self, role: str, *, like: Account | None = None, display_name: str | None = None
    ) -> Caller:
        """A throwaway account of ``role``, logged in: the scenario may spoil it."""
        return self.login(self.new_account(role, like=like, display_name=display_name))

    def admin(self) -> Caller:
        return self.caller(SYSADMIN)

    def manager(self) -> Caller:
        """The shared data manager persona: registers children and reads its LA's alerts."""
        return self.caller(DATA_MANAGER)

    def persona_in(self, roles: str | Iterable[str], local_authority: str | None) -> Account | None:
        """The shared persona of the first of ``roles`` the personas file has in the authority."""
        for role in (roles,) if isinstance(roles, str) else roles:
            for account in self.target.accounts:
                if (
                    account.role == role
                    and not account.throwaway
                    and account.local_authority == local_authority
                ):
                    return account
        return None

    def colleague(self, role: str, of: Caller, *, display_name: str | None = None) -> Caller:
        """A throwaway account of ``role`` in the local authority of ``of``, logged in."""
        la = of.account.local_authority
        template = self.persona_in(role, la)
        if template is None:
            raise Skip(f"the personas file has no {role} in {la}")
        return self.fresh(role, like=template, display_name=display_name)

    def outsider(self, role: str, of: Caller, *, display_name: str | None = None) -> Caller:
        """A throwaway account of ``role`` in a local authority other than that of ``of``."""
        template = self.persona(role, other_than=of.account.local_authority)
        # Preferably where a data manager persona can confirm a role that waits for one.
        for account in self.target.accounts:
            if (
                account.role == role
                and not account.throwaway
                and account.local_authority != of.account.local_authority
                and self.persona_in(DATA_MANAGER, account.local_authority) is not None
            ):
                template = account
                break
        return self.fresh(role, like=template, display_name=display_name)

    def outsider_if_any(self, role: str, of: Caller) -> Caller | None:
        """An ``outsider``, or None (noted) when the personas file has no such account elsewhere."""
        try:
            return self.outsider(role, of)
        except Skip:
            self.note(f"no {role} persona outside {of.account.local_authority}: not checked")
            return None

    def from_source(self, address: str) -> httpx.Client:
        """A client that connects from ``address`` (a local address of this machine), recorded
        in the evidence like the scenario's own: for rules that tell sources apart."""
        return httpx.Client(
            base_url=self.target.url,
            timeout=self.target.timeout,
            verify=self.target.verify_tls,
            transport=httpx.HTTPTransport(local_address=address, verify=self.target.verify_tls),
            event_hooks={"request": [self._watch.start], "response": [self._record]},
        )

    def attempt_login(
        self, username: str, password: str, otp: str, *, forwarded_for: str | None = None
    ) -> httpx.Response:
        """Send one login attempt as given, and return the answer whatever it is.

        ``forwarded_for`` names a source address in X-Forwarded-For: a target that trusts the
        harness as a proxy counts the attempt against that address; any other ignores it.
        """
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
        return self.http.post(
            f"{API}/auth/login",
            json={"username": username, "password": password, "otp": otp},
            headers=headers,
        )

    # -- children ------------------------------------------------------------------------------

    def new_child(
        self,
        manager: Caller | None = None,
        *,
        family_name: str | None = None,
        postcode: str | None = None,
        shielded: bool = False,
        age: int = 9,
        given_name: str | None = None,
        gender: str | None = None,
        address_line: str | None = None,
    ) -> Child:
        """Register a fictional child in the data manager's local authority, at an address of
        its own unless ``postcode`` and ``address_line`` place it in another's household."""
        dm = manager or self.caller(DATA_MANAGER)
        family = family_name or fictional_family_name()
        given = given_name or secrets.choice(_GIVEN)
        born = dt.date.today().replace(day=1) - dt.timedelta(days=365 * age + 40)
        # Postcode areas beginning with Q are never used by Royal Mail: no real address.
        address = fictional_address(postcode, address_line)
        response = dm.post(
            "/children",
            json={
                "given_name": given,
                "family_name": family,
                "date_of_birth": born.isoformat(),
                "gender": gender or secrets.choice(["female", "male"]),
                "address": address,
            },
        )
        if response.status_code != 201:
            raise Skip(f"cannot register a test child: {status_text(response)}")
        child = Child(
            child_id=response.json()["child_id"],
            given_name=given,
            family_name=family,
            date_of_birth=born.isoformat(),
            postcode=address["postcode"],
            local_authority=dm.account.local_authority,
            address_line=address["line1"],
        )
        if shielded:
            shield = dm.post(
                f"/children/{child.child_id}/shield",
                json={"shielded": True, "decision_note": "harness"},
            )
            if shield.status_code != 200:
                cannot("shield a test child", shield)
        return child

    def claim(self, practitioner: Caller, child_id: str) -> int:
        """Claim that the practitioner's service works with a child; return the involvement id.

        A claim widens nobody's view until the child's LA confirms it (``confirm``).
        """
        response = practitioner.post(f"/children/{child_id}/involvements", json={})
        if response.status_code != 201:
            cannot("record an involvement", response)
        return int(response.json()["id"])

    def confirm(self, manager: Caller, involvement: int) -> None:
        """Confirm a claimed involvement as a data manager of the child's LA."""
        response = manager.post(f"/involvements/{involvement}/confirm")
        if response.status_code != 200:
            cannot("confirm an involvement", response)

    def manager_of(self, child: Child) -> Caller:
        """A data manager persona of the child's LA, logged in (or skip)."""
        account = self.persona_in(DATA_MANAGER, child.local_authority)
        if account is None:
            raise Skip(f"the personas file has no {DATA_MANAGER} in {child.local_authority}")
        return Caller(self, account, self._token(account))

    def involve(self, practitioner: Caller, child: Child) -> int:
        """Register the practitioner's service as working with ``child``, confirmed by the
        child's LA; return the id."""
        involvement = self.claim(practitioner, child.child_id)
        self.confirm(self.manager_of(child), involvement)
        return involvement

    # -- waiting and the database -------------------------------------------------------------

    def wait_for(
        self, probe: Callable[[], T | None], within: float, every: float = 0.5
    ) -> T | None:
        """Poll ``probe`` until it returns something, for at most ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = probe()
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(every)

    def expect_alert(
        self,
        reviewer: Caller,
        kind: str,
        *,
        subject: Caller,
        since: float,
        child_id: str | None = None,
        where: Callable[[Alert], bool] | None = None,
        what: str,
    ) -> Alert:
        """Fail unless ``reviewer`` sees an alert of ``kind`` about ``subject`` in time.

        Polls GET /alerts for one about ``child_id`` (if given) that ``where`` accepts (if given)
        and notes its delay after ``since``, a ``time.monotonic()`` reading taken when the
        triggering answer came back; ``what`` names the trigger in the note and the failure.
        """

        def probe() -> Alert | None:
            for alert in reviewer.alerts(kind):
                if alert.get("subject_user_id") != subject.account.id:
                    continue
                if child_id is not None and alert.get("child_id") != child_id:
                    continue
                if where is None or where(alert):
                    return alert
            return None

        alert = self.wait_for(probe, self.target.alert_within, every=0.25)
        delay = time.monotonic() - since
        expect(
            alert is not None,
            f"no {kind} alert about {subject.account.username} ({what}) reached the management "
            f"team of {reviewer.account.local_authority} within {self.target.alert_within:.0f} s",
        )
        assert alert is not None
        self.note(f"{kind} alert {alert['id']} ({what}) seen {delay:.2f} s after the trigger")
        return alert

    @property
    def database(self) -> Engine:
        """The registry's database (white-box scenarios declare ``needs={"database"}``)."""
        if self.target.database_url is None:
            raise Skip(self.target.missing_reason("database"))
        if self._engine is None:
            from sqlalchemy import create_engine

            from reference_app.kit.db import normalise_url

            self._engine = create_engine(normalise_url(self.target.database_url))
        return self._engine
