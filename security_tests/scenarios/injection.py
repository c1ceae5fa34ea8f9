"""Injection and input handling: SQL and JSON injection, body limits, content types, identifiers.

Every hostile input must end in a clean refusal (a 4xx in the error envelope) or an ordinary
answer no larger than the honest question's, never a 5xx, never database error text, a stack
trace or a path on the server. Searches and record views count towards the harvesting rules
(sweeps, enumeration misses, machine timing), so each scenario spreads its requests over
throwaway accounts and keeps every account far below those thresholds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pyotp

from security_tests.context import (
    DATA_MANAGER,
    Caller,
    Child,
    Context,
    error_code,
    expect_error,
    fictional_address,
    fictional_family_name,
    json_body,
    refusal,
    status_text,
)
from security_tests.engine import Severity, expect, scenario
from security_tests.scenarios._common import CROCKFORD, random_identifier
from security_tests.target import API, TOTP_STEP

PRACTITIONER = "health_practitioner"
AUDITOR = "national_auditor"

# Classic payloads: tautologies, stacked queries, comments, unions, both quote styles.
SQL_PAYLOADS = (
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE children; --",
    '" OR ""="',
    "' UNION SELECT NULL, NULL, NULL --",
    "') OR ('a'='a",
    "1; SELECT 1 --",
    "x'/*",
)
# What a database driver, an ORM or a framework prints when a query or a request goes wrong.
_SQL_ERROR = re.compile(
    r"syntax error|sqlite|psycopg|sqlstate|sqlalchemy|operationalerror|programmingerror|"
    r"unterminated quoted|unrecognized token|pg_catalog|ora-\d{5}|mysql",
    re.IGNORECASE,
)
_INTERNALS = re.compile(
    r"traceback \(most recent call last\)|file \"[^\"]+\", line \d+|site-packages|"
    r"(?:/[\w.-]+){2,}\.py\b|[a-z]:\\[\w\\.-]+\.py\b",
    re.IGNORECASE,
)
# Far above any sane API body (the reference registry caps bodies at 64 KiB).
OVERSIZED_BYTES = 1_048_576
NESTING = 5_000
# An integer no 64-bit database column holds.
HUGE = 2**64


# -- helpers -------------------------------------------------------------------------------------


def clean(response: httpx.Response, what: str) -> httpx.Response:
    """Fail unless ``response`` is an ordinary answer or a refusal in the error envelope that
    shows no database error, stack trace or server path."""
    status = response.status_code
    where = f"{what} ({response.request.method} {response.request.url.path})"
    expect(status < 500, f"{where}: answered {status_text(response)}")
    if status >= 400:
        expect(
            error_code(response) is not None,
            f"{where}: the {status} refusal is not in the error envelope",
        )
    text = response.text
    leak = _SQL_ERROR.search(text)
    expect(leak is None, f"{where}: the answer shows database error text ({leak and leak[0]!r})")
    internals = _INTERNALS.search(text)
    expect(
        internals is None,
        f"{where}: the answer shows server internals ({internals and internals[0]!r})",
    )
    return response


def refused(response: httpx.Response, what: str) -> None:
    """Fail unless ``response`` is a clean 4xx refusal."""
    clean(response, what)
    expect(
        400 <= response.status_code < 500,
        f"{what}: answered {response.status_code}, expected a refusal (4xx)",
    )


def no_more_than(response: httpx.Response, honest: int, what: str) -> None:
    """Fail unless a search is refused or finds no more children than the honest search."""
    clean(response, what)
    if response.status_code != 200:
        refused(response, what)
        return
    body = response.json()
    found = len(body.get("results", []))
    expect(
        not body.get("refine_search") and found <= honest,
        f"{what}: found {found} children (refine_search={body.get('refine_search')}) where "
        f"the honest search finds {honest}",
    )


def _same_refusal(a: httpx.Response, b: httpx.Response) -> bool:
    """Whether two refusals say the same (status, code and message; request ids differ)."""
    ea = (json_body(a) or {}).get("error", {})
    eb = (json_body(b) or {}).get("error", {})
    return a.status_code == b.status_code and (ea.get("code"), ea.get("message")) == (
        eb.get("code"),
        eb.get("message"),
    )


class Rotation:
    """Throwaway accounts of one role, each used for at most ``uses`` counted requests.

    Searches and views feed the harvesting rules (six variants of a surname an hour, ten
    misses an hour, twenty evenly spaced requests); a scenario that must send more moves on to
    a new account well before any of them could trip.
    """

    def __init__(self, ctx: Context, role: str, uses: int) -> None:
        self.ctx = ctx
        self.role = role
        self.uses = uses
        self.accounts = 0
        self._current: Caller | None = None
        self._left = 0

    def next(self) -> Caller:
        """The account for the next counted request."""
        if self._current is None or self._left == 0:
            self._current = self.ctx.fresh(self.role)
            self._left = self.uses
            self.accounts += 1
        self._left -= 1
        return self._current


def _honest_count(searcher: Caller, child: Child) -> int:
    """How many children the honest search for ``child`` finds (it must find the child)."""
    response = clean(
        searcher.search(family_name=child.family_name, given_name=child.given_name),
        "the honest search",
    )
    expect(response.status_code == 200, f"the honest search answered {response.status_code}")
    found = [r["child_id"] for r in response.json()["results"]]
    expect(child.child_id in found, "the honest search does not find the registered child")
    return len(found)


def _json(caller: Caller, path: str, raw: bytes | str, method: str = "POST") -> httpx.Response:
    """Send ``raw`` as the body of a JSON request, byte for byte."""
    content = raw.encode("utf-8") if isinstance(raw, str) else raw
    return caller.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )


def wrong_check_character(child_id: str) -> str:
    """``child_id`` with its check character replaced by another valid character."""
    right = child_id[-1]
    return child_id[:-1] + next(ch for ch in CROCKFORD if ch != right)


# -- SQL injection -------------------------------------------------------------------------------


@scenario(
    "injection.sql-search",
    owasp=["API8:2023"],
    asvs=["1.2.4", "16.5.1"],
    severity=Severity.HIGH,
    gap="queries bind every value (searches compare keyed hashes); no switch builds SQL from input",
)
def sql_search(ctx: Context) -> None:
    """SQL in any search field is refused or matches nothing more than the honest search."""
    child = ctx.new_child()
    # Four counted searches an account: at most four variants of one surname, no rhythm.
    searchers = Rotation(ctx, PRACTITIONER, uses=4)
    honest = _honest_count(searchers.next(), child)
    for payload in SQL_PAYLOADS:
        probes: dict[str, dict[str, Any]] = {
            "family_name": {
                "family_name": child.family_name + payload,
                "given_name": child.given_name,
            },
            "given_name": {"family_name": child.family_name, "given_name": payload},
            "postcode": {"family_name": child.family_name, "postcode": payload},
            "date_of_birth": {"family_name": child.family_name, "date_of_birth": payload},
        }
        for field, criteria in probes.items():
            response = searchers.next().search(**criteria)
            no_more_than(response, honest, f"search with SQL in {field}")
    ctx.note(
        f"{len(SQL_PAYLOADS)} payloads in family_name, given_name, postcode and date_of_birth; "
        f"the honest search finds {honest}; {searchers.accounts} throwaway searchers"
    )


@scenario(
    "injection.sql-login",
    owasp=["API2:2023", "API8:2023"],
    asvs=["1.2.4"],
    severity=Severity.HIGH,
    gap="the account lookup binds the username; no switch builds SQL from input",
)
def sql_login(ctx: Context) -> None:
    """SQL in the username or password never logs anyone in (two attempts, no lock-outs)."""
    account = ctx.new_account(PRACTITIONER)
    # The honest login first: the refusals below are the payloads', not a broken login.
    ctx.login(account)
    # The right password and a current code behind a commented-out username check: only a
    # query built from the text could accept it. These two failures are this group's share
    # of the source's lock-out budget (20 in 15 minutes for the whole run).
    code = pyotp.TOTP(account.totp_secret, interval=TOTP_STEP).now()
    attempts = {
        "tautologies in username and password": {
            "username": "' OR '1'='1' --",
            "password": "' OR '1'='1",
            "otp": "000000",
        },
        "a comment after a real username": {
            "username": account.username + "'--",
            "password": account.password,
            "otp": code,
        },
    }
    for what, body in attempts.items():
        response = ctx.attempt_login(**body)
        refused(response, f"login with {what}")
        expect(
            response.status_code in (400, 401, 422, 429),
            f"login with {what} answered {response.status_code}, expected 401",
        )
        expect("access_token" not in response.text, f"login with {what} issued a token")


@scenario(
    "injection.sql-child-id",
    owasp=["API1:2023", "API8:2023"],
    asvs=["1.2.4", "2.2.1"],
    severity=Severity.HIGH,
    gap="identifiers are parsed and bound before any lookup; no switch builds SQL from input",
)
def sql_child_id(ctx: Context) -> None:
    """SQL or a path in the child identifier is refused cleanly on every route that takes one."""
    payloads = (
        "' OR '1'='1",
        "1 OR 1=1",
        "'; DROP TABLE children; --",
        "' UNION SELECT * FROM practitioners --",
        "../../../etc/passwd",
        "\x00",
    )
    # Each refused view is an enumeration miss (ten an hour block the account): six here, and
    # no more than six refusals for any data manager either.
    viewer = ctx.fresh(PRACTITIONER)
    managers = Rotation(ctx, DATA_MANAGER, uses=6)
    for payload in payloads:
        segment = quote(payload, safe="")
        refused(viewer.view(segment), f"a view of {payload!r}")
        refused(
            managers.next().patch(f"/children/{segment}", json={"given_name": "Ada"}),
            f"a correction of {payload!r}",
        )
        refused(
            managers.next().post(f"/children/{segment}/shield", json={"shielded": False}),
            f"shielding {payload!r}",
        )
        refused(
            managers.next().get(f"/subject-access/{segment}"),
            f"a subject access pack of {payload!r}",
        )


@scenario(
    "injection.sql-audit-query",
    owasp=["API8:2023"],
    asvs=["1.2.4", "2.2.1"],
    severity=Severity.HIGH,
    gap="the trail's filters are typed and bound; no switch builds SQL from input",
)
def sql_audit_query(ctx: Context) -> None:
    """SQL in the audit trail's query parameters returns no more events than an honest filter."""
    auditor = ctx.caller(AUDITOR)
    absent = random_identifier()
    honest = clean(
        auditor.get("/audit/events", params={"child_id": absent, "limit": 50}),
        "an honest filter on a child nobody registered",
    )
    expect(honest.status_code == 200, f"the honest audit query answered {honest.status_code}")
    expect(honest.json() == [], "events are listed for a child identifier nobody registered")
    probes: list[dict[str, str]] = [
        {"child_id": "' OR '1'='1"},
        {"child_id": "' OR 1=1--"},
        {"child_id": "x' OR 'x'='x"},
        {"child_id": "' UNION SELECT 1 --"},
        {"actor_id": "1 OR 1=1"},
        {"tag": "x' OR '1'='1"},
        {"before_id": "1; DROP TABLE audit_events"},
        {"limit": "1 OR 1=1"},
    ]
    for params in probes:
        ((name, value),) = params.items()
        response = clean(auditor.get("/audit/events", params=params), f"audit {name}={value!r}")
        if response.status_code == 200:
            rows = response.json()
            # Nothing matches these values: a filter that lists events has been subverted,
            # or ignored (failing open).
            expect(
                isinstance(rows, list) and not rows,
                f"audit {name}={value!r} listed {len(rows)} events where none match",
            )
        else:
            refused(response, f"audit {name}={value!r}")


# -- JSON and other input ------------------------------------------------------------------------


def _search_json(family: str, given: str) -> dict[str, Any]:
    return {"family_name": family, "given_name": given}


@scenario(
    "injection.json-shapes",
    owasp=["API3:2023", "API8:2023"],
    asvs=["1.5.2", "1.5.3", "2.2.1", "15.3.3", "15.3.5"],
    severity=Severity.MEDIUM,
    gap="strict request schemas (unknown fields refused, no type coercion) are not switchable",
)
def json_shapes(ctx: Context) -> None:
    """Wrong types, unknown keys, malformed JSON and bad Unicode are refused; nothing widens."""
    child = ctx.new_child()
    f, g = child.family_name, child.given_name
    searchers = Rotation(ctx, PRACTITIONER, uses=6)
    honest = _honest_count(searchers.next(), child)
    must_refuse: dict[str, bytes | str] = {
        "a number for a name": json.dumps({"family_name": 5, "given_name": g}),
        "true for a name": json.dumps({"family_name": True, "given_name": g}),
        "null for the family name": json.dumps({"family_name": None, "given_name": g}),
        "an array for a name": json.dumps({"family_name": [f], "given_name": g}),
        "an operator object for a name": json.dumps({"family_name": f, "given_name": {"$ne": ""}}),
        "a number for a date": json.dumps({"family_name": f, "date_of_birth": 20100101}),
        # Midnight 1 January 2010 in seconds since 1970: a lax parser reads it as that day.
        "seconds for a date": json.dumps({"family_name": f, "date_of_birth": 1262304000}),
        "true for a date": json.dumps({"family_name": f, "date_of_birth": True}),
        "a date and time for a date": json.dumps(
            {"family_name": f, "date_of_birth": "2010-01-01T00:00:00"}
        ),
        "an array for a postcode": json.dumps({"family_name": f, "postcode": ["QA1 9ZZ"]}),
        "__proto__": json.dumps({**_search_json(f, g), "__proto__": {"admin": True}}),
        "constructor.prototype": json.dumps(
            {**_search_json(f, g), "constructor": {"prototype": {"admin": True}}}
        ),
        "a truncated document": f'{{"family_name": "{f}", "given_name": "{g}"',
        "single quotes": f"{{'family_name': '{f}', 'given_name': '{g}'}}",
        "a trailing comma": f'{{"family_name": "{f}", "given_name": "{g}",}}',
        "NaN": f'{{"family_name": "{f}", "given_name": "{g}", "date_of_birth": NaN}}',
        "an enormous number": f'{{"family_name": "{f}", "date_of_birth": 1e999}}',
        "a raw NUL byte in a string": f'{{"family_name": "{f}\x00", "given_name": "{g}"}}',
        "invalid UTF-8": b'{"family_name": "\xff\xfe", "given_name": "x"}',
        "overlong UTF-8": b'{"family_name": "\xc0\xaf", "given_name": "x"}',
        "a lone surrogate": f'{{"family_name": "{f}\\ud800", "given_name": "{g}"}}',
        "a top-level array": json.dumps([_search_json(f, g)]),
        "a top-level string": json.dumps(f),
        "an empty body": b"",
    }
    for what, raw in must_refuse.items():
        refused(_json(searchers.next(), "/children/search", raw), f"a search with {what}")
    # Answers these may get: refused, or an ordinary search that finds no more than the honest
    # one. Duplicate keys must not let a value past validation that the query then uses.
    may_answer: dict[str, str] = {
        "a duplicate key (a wildcard first)": f'{{"family_name": "{f}", "given_name": "%", '
        f'"given_name": "{g}"}}',
        "a duplicate key (a wildcard last)": f'{{"family_name": "{f}", "given_name": "{g}", '
        f'"given_name": "%"}}',
        "a duplicate key (a tautology first)": f"{{\"family_name\": \"{f}' OR '1'='1\", "
        f'"family_name": "{f}", "given_name": "{g}"}}',
        "an escaped NUL": json.dumps(_search_json(f + "\u0000", g)),
        "a right-to-left override": json.dumps(_search_json("\u202e" + f, g)),
        "zero-width characters": json.dumps(_search_json(f[:2] + "\u200b\u200d" + f[2:], g)),
        "a byte order mark": "\ufeff" + json.dumps(_search_json(f, g)),
        "full-width letters": json.dumps(
            _search_json("".join(chr(ord(ch) + 0xFEE0) for ch in f), g)
        ),
        "combining accents": json.dumps(_search_json(f[0] + "\u0301\u0308" + f[1:], g)),
    }
    for what, raw in may_answer.items():
        no_more_than(_json(searchers.next(), "/children/search", raw), honest, f"{what}")
    manager = ctx.fresh(DATA_MANAGER)
    valid: dict[str, Any] = {
        "given_name": g,
        "family_name": fictional_family_name(),
        "date_of_birth": child.date_of_birth,
        "gender": "female",
        "address": fictional_address(),
    }
    wrong: dict[str, dict[str, Any]] = {
        "a number for a name": {**valid, "given_name": 5},
        "a string for the address": {**valid, "address": "1 Harness Row, Nowhere"},
        "an array for a postcode": {**valid, "address": {**valid["address"], "postcode": ["x"]}},
        "a fraction for a date": {**valid, "date_of_birth": 1.5},
        "an array for the gender": {**valid, "gender": ["female"]},
        "__proto__ in the address": {
            **valid,
            "address": {**valid["address"], "__proto__": {"shielded": True}},
        },
        "an unknown local_authority_id": {**valid, "local_authority_id": 1},
        "an unknown shielded flag": {**valid, "shielded": True},
    }
    for what, body in wrong.items():
        refused(manager.post("/children", json=body), f"registering a child with {what}")
    ctx.note(
        f"{len(must_refuse)} malformed searches refused; {len(may_answer)} odd but valid "
        f"searches found at most the honest {honest}; {len(wrong)} malformed registrations refused"
    )


@scenario(
    "injection.control-characters",
    owasp=["API8:2023"],
    asvs=["2.2.1"],
    severity=Severity.LOW,
    guards=["text_hygiene"],
)
def control_characters(ctx: Context) -> None:
    """Names and addresses with NUL, control or bidirectional-override characters are refused."""
    manager = ctx.fresh(DATA_MANAGER)
    tricks = {
        "NUL": "\u0000",
        "BEL": "\u0007",
        "an ANSI escape": "\u001b[31m",
        "a line break": "\r\n",
        "a right-to-left override": "\u202e",
        "a directional isolate": "\u2066",
    }
    accepted: list[str] = []
    for what, trick in tricks.items():
        body = {
            "given_name": "Ada" + trick,
            "family_name": fictional_family_name(),
            "date_of_birth": "2016-03-01",
            "gender": "female",
            "address": {**(home := fictional_address()), "line1": home["line1"] + trick},
        }
        response = clean(manager.post("/children", json=body), f"a name with {what}")
        if response.status_code < 300:
            accepted.append(f"{what} ({response.status_code} {response.json().get('child_id')})")
    expect(not accepted, "registered children whose name and address hold " + "; ".join(accepted))


RLO = "\u202e"  # right-to-left override: "note\u202etxt.exe" reads as "noteexe.txt"


@scenario(
    "injection.bidi-text",
    owasp=["API8:2023"],
    asvs=["2.2.1", "16.4.1"],
    severity=Severity.MEDIUM,
    guards=["text_hygiene"],
)
def bidi_text(ctx: Context) -> None:
    """Notes, reasons, justifications and recipient names refuse bidi and control characters."""
    manager = ctx.fresh(DATA_MANAGER)
    child = ctx.new_child(manager)
    attempts: dict[str, Callable[[], httpx.Response]] = {
        "a shielding decision note with a right-to-left override": lambda: manager.post(
            f"/children/{child.child_id}/shield",
            json={"shielded": True, "decision_note": f"court order {RLO}21 ref"},
        ),
        "a request's justification with a directional isolate": lambda: manager.post(
            "/requests",
            json={
                "child_id": child.child_id,
                "kind": "rectification",
                "changes": {"given_name": "Ada"},
                "justification": "the family asked \u2066for this\u2069 change",
            },
        ),
        "an export's recipient name with a right-to-left override": lambda: manager.post(
            "/exports",
            json={
                "scope": {"kind": "local_authority"},
                "justification": "quarterly return to the department",
                "recipient_name": f"Analyst {RLO}tsylanA",
                "recipient_public_key": "not a key: refused first for its name",
            },
        ),
        "an export's justification with NUL and an escape sequence": lambda: manager.post(
            "/exports",
            json={
                "scope": {"kind": "local_authority"},
                "justification": "quarterly return\u0000\u001b[2J to the department",
                "recipient_name": "Analyst",
                "recipient_public_key": "not a key",
            },
        ),
        # A header is read as latin-1: the UTF-8 bytes of U+202E arrive as C1 controls.
        "an access reason's free text with a right-to-left override": lambda: manager.get(
            f"/children/{child.child_id}",
            headers={"X-Access-Reason": f"safeguarding; note {RLO}".encode()},
        ),
    }
    accepted: list[str] = []
    for what, attempt in attempts.items():
        response = clean(attempt(), what)
        ctx.note(f"{what}: {status_text(response)}")
        if response.status_code < 400:
            accepted.append(f"{what} ({response.status_code})")
        elif response.status_code not in (400, 422):
            # Refused, but not for the text: the text itself was never judged.
            accepted.append(f"{what} (refused {status_text(response)}, not for the text)")
    expect(
        not accepted, "free text with bidi or control characters was taken: " + "; ".join(accepted)
    )


@scenario(
    "injection.stored-markup",
    owasp=["API8:2023"],
    asvs=["1.2.1", "3.4.3"],
    severity=Severity.MEDIUM,
    gap="the printable pack's escaping and its policy are not switchable",
)
def stored_markup(ctx: Context) -> None:
    """Markup stored in a child's record is escaped in the printable subject access pack."""
    manager = ctx.fresh(DATA_MANAGER)
    markup = {
        "given_name": "<img src=x onerror=alert(1)>",
        "family_name": fictional_family_name() + '"><script>alert(1)</script>',
        "line1": "<svg onload=alert(1)>",
    }
    response = clean(
        manager.post(
            "/children",
            json={
                "given_name": markup["given_name"],
                "family_name": markup["family_name"],
                "date_of_birth": "2016-03-01",
                "gender": "male",
                "address": {"line1": markup["line1"], "town": "Nowhere", "postcode": "QA1 9ZZ"},
            },
        ),
        "registering a child with markup in the name",
    )
    if response.status_code >= 400:
        ctx.note(f"markup in names is refused ({status_text(response)})")
        return
    child_id = response.json()["child_id"]
    page = clean(
        manager.get(f"/subject-access/{child_id}", params={"format": "html"}),
        "the printable subject access pack",
    )
    expect(page.status_code == 200, f"the printable pack answered {page.status_code}")
    expect(
        page.headers.get("content-type", "").startswith("text/html"),
        f"the printable pack is {page.headers.get('content-type')!r}, not HTML",
    )
    for field, value in markup.items():
        expect(value not in page.text, f"the {field} markup reaches the page unescaped")
    expect("<script>" not in page.text.lower(), "the page carries a script element")
    expect("&lt;img" in page.text, "the stored name does not appear, escaped, on the page")
    csp = page.headers.get("content-security-policy", "")
    expect(csp.startswith("default-src 'none'"), f"the page's content security policy is {csp!r}")


@scenario(
    "injection.body-limits",
    owasp=["API4:2023"],
    asvs=["15.2.2", "4.2.1"],
    severity=Severity.MEDIUM,
    guards=["request_limits"],
)
def body_limits(ctx: Context) -> None:
    """Oversized bodies (declared or chunked) get 413 and deeply nested JSON gets 400."""
    child = ctx.new_child()
    searcher = ctx.fresh(PRACTITIONER)
    padding = "a" * OVERSIZED_BYTES
    oversized = json.dumps({"family_name": padding, "given_name": child.given_name})
    expect_error(_json(searcher, "/children/search", oversized), 413, "payload_too_large")
    # The recording client can neither show a streamed body nor parse one nested this deep,
    # so these two exchanges go by a plain client and are noted instead.
    chunked = _unrecorded(ctx, searcher, _chunks(oversized.encode()))
    nested = (
        f'{{"family_name": "{child.family_name}", "given_name": "{child.given_name}", "x": '
        + "[" * NESTING
        + "]" * NESTING
        + "}"
    )
    deep = _unrecorded(ctx, searcher, nested.encode())
    ctx.note(f"a chunked {len(oversized):,}-byte search answered {chunked}")
    ctx.note(f"a search nested {NESTING:,} levels deep answered {deep}")
    # A streamed body declares no length: the limit must count what arrives.
    expect(chunked == (413, "payload_too_large"), f"a chunked oversized body answered {chunked}")
    expect(deep == (400, "json_too_deep"), f"a deeply nested body answered {deep}")
    # Refusing them did not hurt the service: the honest search still works.
    _honest_count(searcher, child)


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 65_536):
        yield body[start : start + 65_536]


def _unrecorded(
    ctx: Context, caller: Caller, content: bytes | Iterator[bytes]
) -> tuple[int, str | None]:
    """Send a search body past the evidence recorder; return the status and error code."""
    with httpx.Client(
        base_url=ctx.target.url, timeout=ctx.target.timeout, verify=ctx.target.verify_tls
    ) as plain:
        response = plain.post(
            f"{API}/children/search",
            content=content,
            headers={**caller.headers, "Content-Type": "application/json"},
        )
    clean(response, "a search sent past the recorder")
    return refusal(response)


@scenario(
    "injection.content-types",
    owasp=["API8:2023"],
    asvs=["1.5.1", "1.5.3", "2.2.1"],
    severity=Severity.MEDIUM,
    gap="the JSON-only body parsing is not switchable",
)
def content_types(ctx: Context) -> None:
    """A body that is not declared as JSON is refused, so no cross-site form can register."""
    manager = ctx.fresh(DATA_MANAGER)
    family = fictional_family_name()
    body = {
        "given_name": "Ada",
        "family_name": family,
        "date_of_birth": "2016-03-01",
        "gender": "female",
        "address": fictional_address(),
    }
    as_json = json.dumps(body)
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f"<child><given_name>&x;</given_name><family_name>{family}</family_name></child>"
    )
    sends: dict[str, tuple[str | None, str]] = {
        "JSON sent as text/plain": ("text/plain", as_json),
        "a form": (
            "application/x-www-form-urlencoded",
            f"given_name=Ada&family_name={family}&date_of_birth=2016-03-01&gender=female",
        ),
        "multipart form data": (
            "multipart/form-data; boundary=b",
            f'--b\r\nContent-Disposition: form-data; name="family_name"\r\n\r\n{family}\r\n--b--',
        ),
        "XML with an external entity": ("application/xml", xxe),
        "JSON with no content type": (None, as_json),
    }
    for what, (content_type, text) in sends.items():
        headers = {"Content-Type": content_type} if content_type else {}
        response = manager.post("/children", content=text.encode(), headers=headers)
        refused(response, f"registering a child with {what}")
        expect(
            response.status_code in (400, 415, 422),
            f"registering a child with {what} answered {response.status_code}, expected 415 or 422",
        )
        expect("root:" not in response.text, f"{what}: the answer holds a local file")
    searcher = ctx.fresh(PRACTITIONER)
    response = searcher.post(
        "/children/search",
        content=json.dumps({"family_name": family, "given_name": "Ada"}).encode(),
        headers={"Content-Type": "text/plain"},
    )
    refused(response, "a search sent as text/plain")


@scenario(
    "injection.identifiers",
    owasp=["API1:2023", "API8:2023"],
    asvs=["2.2.1", "2.4.1"],
    severity=Severity.MEDIUM,
    gap="the identifier's check character is verified by the parser, which is not switchable",
)
def identifiers(ctx: Context) -> None:
    """Mistyped identifiers are refused before any lookup: the answer never tells they exist."""
    child = ctx.new_child()
    # Seven enumeration misses on one account (ten an hour block it).
    viewer = ctx.fresh(PRACTITIONER)
    good = viewer.view(child.child_id)
    expect(good.status_code == 200, f"the child's own identifier answered {good.status_code}")
    lower = clean(viewer.view(child.child_id.lower()), "the identifier in lower case")
    if lower.status_code == 200:
        expect(lower.json().get("child_id") == child.child_id, "lower case found another child")
    else:
        refused(lower, "the identifier in lower case")
    existing = viewer.view(wrong_check_character(child.child_id))
    unknown = viewer.view(wrong_check_character(random_identifier()))
    for response, what in ((existing, "an existing child"), (unknown, "an unknown payload")):
        refused(response, f"{what} with a wrong check character")
    expect(
        _same_refusal(existing, unknown),
        "a wrong check character is answered differently for an existing child "
        f"({status_text(existing)}) and an unknown one ({status_text(unknown)}): the answer "
        "reveals a lookup",
    )
    malformed = {
        "too short": child.child_id[:-1],
        "too long": child.child_id + "0",
        "a letter Crockford forbids (U)": "U" + child.child_id[1:],
        "lower case with a wrong check character": wrong_check_character(child.child_id).lower(),
    }
    for what, text in malformed.items():
        response = viewer.view(text)
        refused(response, f"an identifier {what}")
        expect(
            (response.status_code, error_code(response))
            == (existing.status_code, error_code(existing)),
            f"an identifier {what} is answered {status_text(response)}, a wrong check character "
            f"{status_text(existing)}: the two must look alike",
        )
    refused(viewer.view(random_identifier()), "a well-formed identifier nobody registered")
    ctx.note(f"wrong check character: {status_text(existing)}; lower case: {lower.status_code}")


@scenario(
    "injection.integer-range",
    owasp=["API8:2023", "API4:2023"],
    asvs=["2.2.1", "16.5.3"],
    severity=Severity.MEDIUM,
    gap="integer parameters are typed by the framework; no switch changes their bounds",
)
def integer_range(ctx: Context) -> None:
    """Numeric identifiers beyond 64 bits are refused cleanly, never a server error."""
    manager = ctx.fresh(DATA_MANAGER)
    auditor = ctx.caller(AUDITOR)
    huge, negative = str(HUGE), str(-HUGE)
    probes: list[tuple[Caller, str, str, dict[str, Any]]] = [
        (manager, "GET", f"/exports/{huge}", {}),
        (manager, "POST", f"/exports/{huge}/approve", {}),
        (manager, "GET", f"/exports/{negative}", {}),
        (manager, "GET", f"/alerts/{huge}", {}),
        (manager, "GET", f"/requests/{huge}", {}),
        (manager, "GET", "/requests", {"params": {"before_id": huge}}),
        (
            manager,
            "POST",
            "/exports",
            {
                "json": {
                    "scope": {"kind": "organisation", "organisation_id": HUGE},
                    "justification": "range check by the security harness",
                    "recipient_name": "Nobody",
                    "recipient_public_key": "not a key",
                }
            },
        ),
        (auditor, "GET", "/audit/events", {"params": {"actor_id": huge}}),
        (auditor, "GET", "/audit/events", {"params": {"before_id": huge}}),
    ]
    failures = []
    for caller, method, path, kwargs in probes:
        response = caller.request(method, path, **kwargs)
        if response.status_code >= 500:
            query = "?" + response.request.url.query.decode() if response.request.url.query else ""
            failures.append(f"{method} {path}{query} -> {response.status_code}")
            continue
        refused(response, f"{method} {path} with an out-of-range integer")
    expect(not failures, "server errors for out-of-range integers: " + "; ".join(failures))


@scenario(
    "injection.error-envelope",
    owasp=["API8:2023"],
    asvs=["16.5.1", "13.4.2"],
    severity=Severity.MEDIUM,
    gap="the error envelope and the last-resort handler are not switchable",
)
def error_envelope(ctx: Context) -> None:
    """Every refusal is the error envelope, without stack traces, queries or server paths."""
    searcher = ctx.fresh(PRACTITIONER)
    bearer = {"Authorization": "Bearer ' OR 1=1 --"}
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."  # {"alg":"none"}.{"sub":"1"}.
    probes = [
        ("an unknown route", ctx.http.get(f"{API}/no-such-route")),
        ("a wrong method", ctx.http.delete(f"{API}/children/search")),
        ("SQL for a token", ctx.http.get(f"{API}/auth/me", headers=bearer)),
        (
            "an unsigned token",
            ctx.http.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {unsigned}"}),
        ),
        ("another scheme", ctx.http.get(f"{API}/auth/me", headers={"Authorization": "Basic eDp5"})),
        ("malformed JSON", _json(searcher, "/children/search", '{"family_name": ')),
        ("a traversal", ctx.http.get(f"{API}/children/..%2F..%2F..%2Fetc%2Fpasswd")),
    ]
    for what, response in probes:
        refused(response, what)
        expect("root:" not in response.text, f"{what}: the answer holds a local file")
