"""The registry under test: its URL, the personas that can log in, and what else the run offers.

The personas file is the one `contactpoint generate` writes (`personas.json`: username, password,
TOTP secret, role, organisation and local authority of each account). Beside it the generator
writes `children_sample.jsonl` (searchable children per LA) and `canaries.jsonl` (honeytoken
children); the harness reads them when present.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp

TOTP_STEP = 30
API = "/api/v1"
# Times a login answered 503 login_busy (the registry's hashing lanes full) is sent again.
LOGIN_BUSY_RETRIES = 5


class TargetError(Exception):
    """The target or the personas file cannot be used (bad usage, not a finding)."""


class TargetLoginBroken(TargetError):
    """The login itself broke on the server (5xx): a finding, not a reason to skip."""


@dataclass
class Account:
    """A practitioner account the harness can log in as."""

    username: str
    password: str
    totp_secret: str
    role: str
    local_authority: str | None = None
    organisation: str | None = None
    # Filled from /auth/me after the first login.
    id: int | None = None
    organisation_id: int | None = None
    local_authority_id: int | None = None
    # Made by the harness for one scenario (may be locked, suspended or changed).
    throwaway: bool = False


@dataclass
class Target:
    """Everything a scenario may use of the system under test."""

    url: str
    accounts: list[Account]
    database_url: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)
    canaries: list[dict[str, Any]] = field(default_factory=list)
    source_dir: Path | None = None
    verify_tls: bool = True
    timeout: float = 30.0
    # How soon an alert must reach the LA's management team.
    alert_within: float = 30.0
    # Where the last one-time-code step of each persona is kept between runs (an authenticator
    # app remembers the codes it gave; a rerun inside 30 s must not replay one).
    steps_file: Path | None = None
    # Called with every answer a scenario's clients get (the contract check records them here).
    observers: list[Callable[[httpx.Response], None]] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)
    _steps: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # One login at a time per shared persona: a second scenario wanting it takes the first's token.
    _logging_in: dict[str, threading.Lock] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        url: str,
        personas: Path,
        *,
        database_url: str | None = None,
        source_dir: Path | None = None,
        verify_tls: bool = True,
        alert_within: float = 30.0,
    ) -> Target:
        """Read the personas file (and its sibling sample and canary files) for ``url``."""
        if not url.startswith(("http://", "https://")):
            raise TargetError(f"the target must be an http(s) URL, not {url!r}")
        try:
            rows = json.loads(personas.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TargetError(f"cannot read the personas file {personas}: {exc}") from exc
        try:
            accounts = [
                Account(
                    username=row["username"],
                    password=row["password"],
                    totp_secret=row["totp_secret"],
                    role=row["role"],
                    local_authority=row.get("local_authority"),
                    organisation=row.get("organisation"),
                )
                for row in rows
            ]
        except (KeyError, TypeError) as exc:
            raise TargetError(
                f"{personas}: each persona needs username, password, totp_secret and role"
            ) from exc
        steps_file = personas.with_name(personas.name + ".otp-steps")
        try:
            steps = {str(k): int(v) for k, v in json.loads(steps_file.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            steps = {}
        return cls(
            url=url.rstrip("/"),
            accounts=accounts,
            steps_file=steps_file,
            _steps=steps,
            database_url=database_url,
            sample=_jsonl(personas.parent / "children_sample.jsonl"),
            canaries=_jsonl(personas.parent / "canaries.jsonl"),
            source_dir=source_dir,
            verify_tls=verify_tls,
            alert_within=alert_within,
        )

    @property
    def https(self) -> bool:
        return self.url.startswith("https://")

    def offers(self, need: str) -> bool:
        """Whether the run offers ``need`` ("database", "https", "canaries", "sample", "source")."""
        return {
            "database": self.database_url is not None,
            "https": self.https,
            "canaries": bool(self.canaries),
            "sample": bool(self.sample),
            "source": self.source_dir is not None,
        }[need]

    def missing_reason(self, need: str) -> str:
        return {
            "database": "white-box check: give --database URL of the registry's database",
            "https": "the target is plain http: TLS and HSTS are checked only on https targets",
            "canaries": "no canaries.jsonl beside the personas file",
            "sample": "no children_sample.jsonl beside the personas file",
            "source": "no source tree to scan (give --source DIR)",
        }[need]

    def persona(self, role: str, *, other_than: str | None = None) -> Account:
        """A shared persona of ``role`` (never harmed by a scenario), or raise LookupError."""
        for account in self.accounts:
            if (
                account.role == role
                and not account.throwaway
                and (other_than is None or account.local_authority != other_than)
            ):
                return account
        raise LookupError(role)

    def token(self, http: httpx.Client, account: Account) -> str:
        """A session token for ``account``: cached for shared personas, fresh for throwaways."""
        with self._lock:
            cached = self._tokens.get(account.username)
            gate = self._logging_in.setdefault(account.username, threading.Lock())
        if cached:
            return cached
        with gate:
            with self._lock:
                cached = self._tokens.get(account.username)
            if cached:
                return cached
            token = self.login(http, account)
            with self._lock:
                self._tokens[account.username] = token
            return token

    def forget(self, account: Account) -> None:
        """Drop a cached token (the scenario ended its session)."""
        with self._lock:
            self._tokens.pop(account.username, None)

    def otp(self, account: Account) -> str:
        """A one-time code for a step this account has not used (waiting for the next if need be).

        The registry accepts each time step's code once, so two logins of one account in the
        same 30 seconds must wait for the next step.
        """
        # The step is chosen and claimed in one go: scenarios running side by side (background
        # ones) may log the same persona in at once, and must not both take the current step.
        with self._lock:
            step = max(int(time.time()) // TOTP_STEP, self._steps.get(account.username, -1) + 1)
            self._steps[account.username] = step
        wait = step * TOTP_STEP - time.time()
        if wait > 0:
            time.sleep(wait + 0.2)
        with self._lock:
            if self.steps_file is not None and not account.throwaway:
                shared = {a.username for a in self.accounts}
                kept = {k: v for k, v in self._steps.items() if k in shared}
                # A read-only personas folder: a rerun inside 30 s replays a code and is refused.
                with contextlib.suppress(OSError):
                    self.steps_file.write_text(json.dumps(kept))
        return str(pyotp.TOTP(account.totp_secret, interval=TOTP_STEP).at(step * TOTP_STEP))

    def login(self, http: httpx.Client, account: Account) -> str:
        """Log ``account`` in with password and a fresh one-time code; return the token."""
        body = {"username": account.username, "password": account.password}
        body["otp"] = self.otp(account)
        response = http.post(f"{API}/auth/login", json=body)
        for _ in range(LOGIN_BUSY_RETRIES):
            # The registry's hashing lanes are full (503 login_busy): the code was not checked,
            # so the same attempt is sent again after the pause the answer asks for.
            if response.status_code != 503 or _code(response) != "login_busy":
                break
            pause = response.headers.get("Retry-After", "1")
            time.sleep(min(10.0, float(pause)) if pause.isdigit() else 1.0)
            response = http.post(f"{API}/auth/login", json=body)
        if response.status_code >= 500:
            raise TargetLoginBroken(
                f"logging in as {account.username} failed on the server: "
                f"{response.status_code} {_code(response)}"
            )
        if response.status_code != 200:
            raise TargetError(
                f"cannot log in as {account.username} ({account.role}): "
                f"{response.status_code} {_code(response)}"
            )
        token = str(response.json()["access_token"])
        if account.id is None:
            me = http.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})
            if me.status_code == 200:
                info = me.json()
                account.id = info.get("id")
                account.organisation_id = info.get("organisation_id")
                account.local_authority_id = info.get("local_authority_id")
                la = info.get("local_authority") or {}
                account.local_authority = la.get("code") or account.local_authority
        return token


class TargetUnreachable(TargetError):
    """The target does not answer, or says it is not ready: nothing can be judged."""


def preflight(target: Target, *, ready_within: float = 10.0) -> list[str]:
    """Check, in seconds, that the target is ready and one persona of each role can log in.

    Raises TargetUnreachable when ``/readyz`` does not answer 200 within ``ready_within``
    seconds, and TargetError when a persona cannot log in (the personas file is not this
    target's). Returns the roles that logged in; their sessions are kept for the run.
    """
    try:
        ready = httpx.get(target.url + "/readyz", timeout=ready_within, verify=target.verify_tls)
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"the target {target.url} does not answer: {exc}") from exc
    if ready.status_code != 200:
        raise TargetUnreachable(
            f"the target {target.url} is not ready: /readyz answered {ready.status_code}"
        )
    roles: dict[str, Account] = {}
    for account in target.accounts:
        roles.setdefault(account.role, account)
    with httpx.Client(
        base_url=target.url, timeout=target.timeout, verify=target.verify_tls
    ) as http:
        for account in roles.values():
            try:
                target.token(http, account)
            except httpx.HTTPError as exc:
                raise TargetUnreachable(f"the target stopped answering: {exc}") from exc
    return sorted(roles)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return response.text[:80]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
