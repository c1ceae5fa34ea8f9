"""Harvesting: bulk collection through searches and views is stopped, alerted and then suspended.

Each harvester is a throwaway account in the shared data manager's local authority, so the
management team that must hear of it is the one the harness can read. A sweep needs only tens of
requests: the registry promises to stop a postcode or date-of-birth sweep at 25 values an hour, a
surname sweep at 6 variants, identifier guessing at 10 misses, machine-timed requests at 20, and
a practitioner at their role's daily count of distinct children (40 for the voluntary sector),
given names at 25 an hour and surnames at 30. Children shown in search results count as if
viewed, towards the account's daily count and a count shared by its organisation: whatever the
strategy, a harvester or a team of them is stopped before 200 distinct children reach it.
Every stop must come with a `harvesting` alert to the harvester's LA; a second signal the same day
suspends the account. The daily-cap harvest is paced by the per-minute limit (15 views for the
role), so it spans three clock minutes: one to two minutes of waiting.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from security_tests.context import Caller, Context, expect_error, fictional_family_name, refusal
from security_tests.engine import Severity, expect, scenario
from security_tests.scenarios._common import (
    CROCKFORD,
    pause,
    random_identifier,
    session_state,
)

BLOCKED = "harvesting_blocked"
SUSPENDED = "account_suspended"
# The most requests each harvester may make before it must be stopped (the registry's figure
# in brackets): postcode and date-of-birth sweeps (25), surname variants (6), identifier
# misses (10), evenly timed requests (20), distinct children a day for the lowest role (40).
SWEEP_BUDGET = 30
SURNAME_BUDGET = 8
ENUMERATION_BUDGET = 15
TIMING_BUDGET = 21
DAILY_CAP = 40
# A script's pace: one search a second. The registry stamps each request as it starts work, so
# its wait for the database under other traffic adds jitter; at 0.15 s apart a 30 ms stall
# already made a machine look like a person (the rule wants intervals varying by under 15 %).
TIMING_INTERVAL = 1.0
# Searches a minute for a voluntary practitioner, the lowest role; a burst may straddle a minute.
RATE_LIMIT = 15
RATE_BUDGET = 2 * RATE_LIMIT + 1
# Sweeps over one criterion: 25 given names an hour, 30 surnames an hour (the registry's figures).
GIVEN_NAME_BUDGET = 30
GIVEN_NAMES_PER_SURNAME = 5  # under the six variants of one surname that are a sweep of their own
SURNAME_BUDGET_ONE_BIRTH_DATE = 35
# What leaves the registry: the project's target is that no harvesting strategy brings one
# harvester (or one organisation's accounts) 200 distinct children before it is stopped.
HARVEST_TARGET = 200
# A youth offending practitioner may see 60 distinct children a day, search results included;
# 20 searches stay under every sweep threshold and the role's 20 searches a minute.
RESULTS_ROLE = "youth_offending_practitioner"
RESULTS_ROLE_QUOTA = 60
RESULTS_SEARCHES = 20
# Three accounts of one organisation (police: 30 searches a minute, 120 children a day each),
# 22 searches each: under every per-account threshold, 261 children in the reference sample.
TEAM_ROLE = "police_practitioner"
TEAM_SIZE = 3
TEAM_SEARCHES = 22
QUOTA_RULES = {
    "daily_quota_reached": "daily_quota",
    "organisation_quota_reached": "organisation_quota",
    "local_authority_quota_reached": "local_authority_quota",
}
LIST_ROUTES = ("/alerts", "/exports", "/audit/events", "/requests")
LIST_CAP = 500


def mistyped(identifier: str) -> str:
    """``identifier`` with one payload character changed: its check character no longer fits."""
    position = secrets.randbelow(12)
    wrong = secrets.choice([ch for ch in CROCKFORD if ch != identifier[position]])
    return identifier[:position] + wrong + identifier[position + 1 :]


def _sample(ctx: Context, distinct: str) -> list[dict[str, Any]]:
    """Sample children (no canaries) with distinct family names and distinct ``distinct``."""
    canaries = {row["child_id"] for row in ctx.target.canaries}
    names: set[str] = set()
    values: set[str] = set()
    chosen = []
    for row in ctx.target.sample:
        if row["child_id"] in canaries or row["family_name"] in names or row[distinct] in values:
            continue
        names.add(row["family_name"])
        values.add(row[distinct])
        chosen.append(row)
    return chosen


def _until_stopped(
    responses: Iterator[httpx.Response], budget: int
) -> tuple[int, httpx.Response | None, list[httpx.Response]]:
    """Take answers (each request is made as it is taken) until a 429/403 or the budget ends.

    Returns how many requests were made, the refusal (None if none came) and the answers before.
    """
    answered: list[httpx.Response] = []
    for made, response in enumerate(responses, start=1):
        if response.status_code in (429, 403):
            return made, response, answered
        answered.append(response)
        if made >= budget:
            break
    return len(answered), None, answered


def _expect_blocked(
    ctx: Context,
    refused: httpx.Response | None,
    made: int,
    budget: int,
    what: str,
) -> None:
    """Fail unless the harvester was stopped with ``harvesting_blocked`` within the budget."""
    expect(refused is not None, f"{what}: {made} requests went through, none refused")
    assert refused is not None
    status, code = refusal(refused)
    expect(
        (status, code) == (429, BLOCKED),
        f"{what}: stopped by {status} {code} after {made} requests, expected 429 {BLOCKED}",
    )
    retry = refused.headers.get("retry-after", "")
    expect(retry.isdigit() and int(retry) > 0, f"{what}: the block has no Retry-After")
    ctx.note(f"{what}: blocked at request {made} of at most {budget}, for {retry} s")


def _harvest_alert(ctx: Context, harvester: Caller, rule: str, since: float) -> dict[str, Any]:
    """The harvesting alert about ``harvester`` for ``rule``, as its LA's team sees it."""
    return ctx.expect_alert(
        ctx.manager(),
        "harvesting",
        subject=harvester,
        since=since,
        where=lambda a: (a.get("details") or {}).get("rule", rule) == rule,
        what=f"rule {rule}",
    )


def _sweep(ctx: Context, field: str, rule: str, what: str) -> None:
    """Search sample families, each with its own ``field`` value, until stopped; expect the alert.

    Each family name is searched once, so only the sweep over ``field`` can grow.
    """
    rows = _sample(ctx, field)
    expect(len(rows) >= SWEEP_BUDGET, f"the sample has only {len(rows)} distinct {field}s")
    harvester = ctx.colleague("health_practitioner", ctx.manager())

    def searches() -> Iterator[httpx.Response]:
        for row in rows[:SWEEP_BUDGET]:
            pause()  # a person's rhythm: the timing rule must not be what stops this sweep
            yield harvester.search(family_name=row["family_name"], **{field: row[field]})

    made, refused, answered = _until_stopped(searches(), SWEEP_BUDGET)
    since = time.monotonic()
    reached = sum(r.json().get("count", 0) for r in answered if r.status_code == 200)
    ctx.note(f"{what}: {made} searches reached {reached} children before the stop")
    _expect_blocked(ctx, refused, made, SWEEP_BUDGET, what)
    _harvest_alert(ctx, harvester, rule, since)
    again = harvester.search(family_name=rows[0]["family_name"], **{field: rows[0][field]})
    expect_error(again, 429, BLOCKED)


@scenario(
    "harvesting.postcode-sweep",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1"],
    severity=Severity.HIGH,
    guards=["harvesting_detection"],
    needs=["sample"],
)
def postcode_sweep(ctx: Context) -> None:
    """A sweep of searches over many postcodes is blocked within 30 and alerted to the LA."""
    _sweep(ctx, "postcode", "sweep_postcode", "postcode sweep")


@scenario(
    "harvesting.date-of-birth-sweep",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1"],
    severity=Severity.HIGH,
    guards=["harvesting_detection"],
    needs=["sample"],
)
def date_of_birth_sweep(ctx: Context) -> None:
    """A sweep of searches over many dates of birth is blocked within 30 and alerted to the LA."""
    _sweep(ctx, "date_of_birth", "sweep_date_of_birth", "date-of-birth sweep")


def _enumerate(ctx: Context, identifiers: list[str], miss_status: int, what: str) -> None:
    """View ``identifiers`` (none of them a child) until stopped; expect the alert."""
    harvester = ctx.colleague("health_practitioner", ctx.manager())

    def views() -> Iterator[httpx.Response]:
        for identifier in identifiers:
            pause()
            yield harvester.view(identifier)

    made, refused, answered = _until_stopped(views(), ENUMERATION_BUDGET)
    since = time.monotonic()
    odd = [r.status_code for r in answered if r.status_code != miss_status]
    expect(not odd, f"{what}: a guess answered {odd[0] if odd else ''}, not {miss_status}")
    _expect_blocked(ctx, refused, made, ENUMERATION_BUDGET, what)
    _harvest_alert(ctx, harvester, "enumeration", since)


@scenario(
    "harvesting.identifier-enumeration",
    owasp=["API6:2023", "API1:2023"],
    asvs=["2.4.1"],
    severity=Severity.HIGH,
    guards=["harvesting_detection"],
)
def identifier_enumeration(ctx: Context) -> None:
    """Guessing well-formed child identifiers is blocked within 15 misses and alerted."""
    guesses = [random_identifier() for _ in range(ENUMERATION_BUDGET)]
    _enumerate(ctx, guesses, 404, "well-formed identifiers")


@scenario(
    "harvesting.mistyped-identifiers",
    owasp=["API6:2023", "API1:2023"],
    asvs=["2.4.1"],
    severity=Severity.MEDIUM,
    guards=["harvesting_detection"],
    needs=["sample"],
)
def mistyped_identifiers(ctx: Context) -> None:
    """Identifiers with a wrong check character are refused unread and count as guesses."""
    rows = ctx.target.sample[:ENUMERATION_BUDGET]
    _enumerate(ctx, [mistyped(row["child_id"]) for row in rows], 422, "mistyped identifiers")


@scenario(
    "harvesting.second-signal-suspends",
    owasp=["API6:2023", "API2:2023"],
    asvs=["2.4.1", "8.3.2"],
    severity=Severity.HIGH,
    guards=["harvesting_detection", "auto_suspend"],
    needs=["sample"],
)
def second_signal_suspends(ctx: Context) -> None:
    """A harvester blocked once and caught again the same day is suspended at once."""
    dm = ctx.manager()
    harvester = ctx.colleague("health_practitioner", dm)
    # The commonest surname in the sample, with one date of birth after another.
    surname = Counter(row["family_name"] for row in ctx.target.sample).most_common(1)[0][0]
    births = sorted({row["date_of_birth"] for row in ctx.target.sample})[:SURNAME_BUDGET]

    def searches() -> Iterator[httpx.Response]:
        for born in births:
            pause()
            yield harvester.search(family_name=surname, date_of_birth=born)

    made, refused, _ = _until_stopped(searches(), SURNAME_BUDGET)
    since = time.monotonic()
    _expect_blocked(ctx, refused, made, SURNAME_BUDGET, "one surname, many dates of birth")
    _harvest_alert(ctx, harvester, "sweep_same_name", since)
    # While blocked, the harvester turns to guessing identifiers: the second signal.
    guesses = [mistyped(row["child_id"]) for row in ctx.target.sample[:ENUMERATION_BUDGET]]

    def views() -> Iterator[httpx.Response]:
        for identifier in guesses:
            pause()
            yield harvester.view(identifier)

    made, refused, _ = _until_stopped(views(), ENUMERATION_BUDGET)
    since = time.monotonic()
    _expect_blocked(ctx, refused, made, ENUMERATION_BUDGET, "identifier guessing while blocked")
    alert = _harvest_alert(ctx, harvester, "enumeration", since)
    status, code = session_state(harvester)
    expect(
        (status, code) == (403, SUSPENDED),
        f"after a second harvesting signal the account still answers {status} {code or ''}",
    )
    expect(
        (alert.get("details") or {}).get("suspended") is True,
        "the second alert does not say the account was suspended",
    )


@scenario(
    "harvesting.machine-timing",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1"],
    severity=Severity.MEDIUM,
    guards=["harvesting_detection"],
    # Twenty-one searches a second apart: it waits most of its 20 s, so it runs beside the rest.
    background=True,
)
def machine_timing(ctx: Context) -> None:
    """Requests spaced as evenly as a machine's are blocked within 21 and alerted."""
    harvester = ctx.colleague("health_practitioner", ctx.manager())
    criteria = {"family_name": fictional_family_name(), "date_of_birth": "2015-06-01"}
    start = time.monotonic()

    def searches() -> Iterator[httpx.Response]:
        for index in range(TIMING_BUDGET):
            time.sleep(max(0.0, start + index * TIMING_INTERVAL - time.monotonic()))
            yield harvester.search(**criteria)

    made, refused, _ = _until_stopped(searches(), TIMING_BUDGET)
    since = time.monotonic()
    _expect_blocked(ctx, refused, made, TIMING_BUDGET, f"a search every {TIMING_INTERVAL} s")
    _harvest_alert(ctx, harvester, "machine_timing", since)


@scenario(
    "harvesting.per-minute-rate-limit",
    owasp=["API4:2023", "API6:2023"],
    asvs=["2.4.1"],
    severity=Severity.MEDIUM,
    guards=["rate_limits"],
)
def per_minute_rate_limit(ctx: Context) -> None:
    """A burst of searches is refused with 429 rate_limited and a Retry-After within a minute."""
    harvester = ctx.colleague("voluntary_practitioner", ctx.manager())
    # One search repeated, as an impatient person would: no sweep grows, only the rate.
    criteria = {"family_name": fictional_family_name(), "given_name": "Ada"}

    def searches() -> Iterator[httpx.Response]:
        for _ in range(RATE_BUDGET):
            pause()
            yield harvester.search(**criteria)

    made, refused, _ = _until_stopped(searches(), RATE_BUDGET)
    expect(refused is not None, f"{made} searches in a burst, none refused")
    assert refused is not None
    expect_error(refused, 429, "rate_limited")
    retry = refused.headers.get("retry-after", "")
    expect(
        retry.isdigit() and 1 <= int(retry) <= 60,
        f"the rate limit's Retry-After is {retry!r}, not 1-60 s",
    )
    ctx.note(f"search {made} of a burst refused (at most {RATE_BUDGET}); retry after {retry} s")
    expect_error(harvester.search(**criteria), 429, "rate_limited")


@scenario(
    "harvesting.daily-distinct-cap",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1", "8.3.2"],
    severity=Severity.HIGH,
    guards=["rate_limits", "auto_suspend"],
    needs=["sample"],
    background=True,
)
def daily_distinct_cap(ctx: Context) -> None:
    """Past the daily count of distinct children a practitioner is refused, alerted, suspended."""
    dm = ctx.manager()
    la = dm.account.local_authority
    canaries = {row["child_id"] for row in ctx.target.canaries}
    children = [
        row["child_id"]
        for row in ctx.target.sample
        if row["local_authority"] == la and row["child_id"] not in canaries
    ]
    expect(
        len(children) >= DAILY_CAP + 2,
        f"the sample has {len(children)} children in {la}; the cap needs {DAILY_CAP + 2}",
    )
    harvest = _PacedHarvest(ctx, ctx.colleague("voluntary_practitioner", dm))
    # Involvements first, as a harvester covering their tracks would (here confirmed by the LA,
    # as a claim alone no longer vouches for a view): the views then look legitimate to the
    # insider-browsing detector, and only the daily cap is left to stop them.
    for child_id in children[: DAILY_CAP + 2]:
        ctx.confirm(dm, ctx.claim(harvest.harvester, child_id))
    viewed = 0
    refused: httpx.Response | None = None
    for child_id in children[: DAILY_CAP + 1]:
        response = harvest.view(child_id)
        if response.status_code != 200:
            refused = response
            break
        viewed += 1
    since = time.monotonic()
    ctx.note(
        f"{viewed} distinct children viewed before the refusal; {harvest.waited:.0f} s spent "
        "waiting out the per-minute limit"
    )
    expect(refused is not None, f"{viewed} distinct children viewed in a day, none refused")
    assert refused is not None
    expect_error(refused, 429, "daily_quota_reached")
    expect(viewed <= DAILY_CAP, f"{viewed} distinct children viewed, above the {DAILY_CAP} cap")
    _harvest_alert(ctx, harvest.harvester, "daily_quota", since)
    # The second refusal the same day is the second signal: the account is suspended.
    expect_error(harvest.view(children[DAILY_CAP + 1]), 429, "daily_quota_reached")
    status, code = session_state(harvest.harvester)
    expect(
        (status, code) == (403, SUSPENDED),
        f"after a second refusal at the daily cap the account answers {status} {code or ''}",
    )


class _PacedHarvest:
    """A harvester viewing children as fast as the per-minute limit lets them."""

    def __init__(self, ctx: Context, harvester: Caller) -> None:
        self.ctx = ctx
        self.harvester = harvester
        self.waited = 0.0
        self.reinstated = False

    def view(self, child_id: str) -> httpx.Response:
        """View a child, waiting out the per-minute limit; return any other refusal."""
        while True:
            pause()
            response = self.harvester.view(child_id)
            status, code = refusal(response)
            if (status, code) == (429, "rate_limited"):
                self._wait(int(response.headers.get("retry-after", "60")))
            elif (status, code) == (403, SUSPENDED) and not self.reinstated:
                self._reinstate()
            else:
                return response

    def _wait(self, seconds: int) -> None:
        """Sleep out the per-minute window, reinstating the harvester meanwhile if need be."""
        deadline = time.monotonic() + seconds + 0.2
        if not self.reinstated:
            time.sleep(min(3.0, seconds))
            if session_state(self.harvester) == (403, SUSPENDED):
                self._reinstate()
        time.sleep(max(0.0, deadline - time.monotonic()))
        self.waited += seconds

    def _reinstate(self) -> None:
        """Reinstate a harvester the insider-browsing detector suspended; log in again.

        That detector scores every view out of working hours, involved or not, and may suspend
        the harvester before the daily cap: a different control, so the harness reinstates the
        account once and the harvest goes on, as a patient harvester's would.
        """
        account = self.harvester.account
        response = self.ctx.admin().patch(f"/users/{account.id}", json={"status": "active"})
        expect(
            response.status_code == 200, f"cannot reinstate the harvester: {response.status_code}"
        )
        self.ctx.note(
            "the insider-browsing detector suspended the harvester first; reinstated once"
        )
        self.reinstated = True
        self.harvester = self.ctx.login(account)


@scenario(
    "harvesting.limits-and-paging",
    owasp=["API4:2023", "API6:2023"],
    asvs=["2.4.1", "8.2.2"],
    severity=Severity.MEDIUM,
    gap="the search result cap and the list limits are fixed in the routes; no switch lifts them",
)
def limits_and_paging(ctx: Context) -> None:
    """More matches than the cap answer 'refine', and no list answers more than its cap."""
    dm = ctx.manager()
    family = fictional_family_name()
    twins = [ctx.new_child(dm, family_name=family) for _ in range(11)]
    searcher = ctx.colleague("health_practitioner", dm)
    crowd = searcher.search(family_name=family, date_of_birth=twins[0].date_of_birth)
    expect(crowd.status_code == 200, f"the crowded search answered {crowd.status_code}")
    body = crowd.json()
    expect(
        body.get("refine_search") is True and not body.get("results"),
        f"11 matches answered {len(body.get('results', []))} results, not 'refine your search'",
    )
    expect_error(
        searcher.post(
            "/children/search",
            json={"family_name": family, "given_name": "Ada", "limit": 100_000},
        ),
        (400, 422),
    )
    reader = ctx.colleague("la_data_manager", dm)
    for path in LIST_ROUTES:
        for limit in ("100000", "0", "-1", "many"):
            response = reader.get(path, params={"limit": limit, "offset": "0"})
            if response.status_code == 200:
                items = response.json()
                expect(
                    isinstance(items, list) and len(items) <= LIST_CAP,
                    f"GET {path}?limit={limit} answered more than {LIST_CAP} items",
                )
            else:
                expect_error(response, (400, 422))


@scenario(
    "harvesting.given-name-sweep",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1"],
    severity=Severity.HIGH,
    guards=["harvesting_detection"],
    needs=["sample"],
)
def given_name_sweep(ctx: Context) -> None:
    """A sweep over many given names, a few to each surname, is blocked within 30 and alerted."""
    given = sorted({row["given_name"] for row in ctx.target.sample})[:GIVEN_NAME_BUDGET]
    expect(len(given) >= GIVEN_NAME_BUDGET, f"the sample has only {len(given)} given names")
    surnames = [fictional_family_name() for _ in range(GIVEN_NAME_BUDGET)]
    harvester = ctx.colleague("health_practitioner", ctx.manager())

    def searches() -> Iterator[httpx.Response]:
        for index, name in enumerate(given):
            pause()
            family = surnames[index // GIVEN_NAMES_PER_SURNAME]
            yield harvester.search(family_name=family, given_name=name)

    made, refused, _ = _until_stopped(searches(), GIVEN_NAME_BUDGET)
    since = time.monotonic()
    _expect_blocked(ctx, refused, made, GIVEN_NAME_BUDGET, "given-name sweep")
    _harvest_alert(ctx, harvester, "sweep_given_name", since)


@scenario(
    "harvesting.dob-sweep",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1"],
    severity=Severity.HIGH,
    guards=["harvesting_detection"],
    needs=["sample"],
)
def dob_sweep(ctx: Context) -> None:
    """One date of birth searched with surname after surname is blocked within 35 and alerted.

    Every search carries the same date of birth, so no field but the surname grows: a sweep
    over the surnames of everyone born on one day.
    """
    rows = _sample(ctx, "family_name")
    budget = SURNAME_BUDGET_ONE_BIRTH_DATE
    expect(len(rows) >= budget, f"the sample has only {len(rows)} surnames")
    born = Counter(row["date_of_birth"] for row in ctx.target.sample).most_common(1)[0][0]
    harvester = ctx.colleague("health_practitioner", ctx.manager())

    def searches() -> Iterator[httpx.Response]:
        for row in rows[:budget]:
            pause()
            yield harvester.search(family_name=row["family_name"], date_of_birth=born)

    made, refused, answered = _until_stopped(searches(), budget)
    since = time.monotonic()
    reached = sum(r.json().get("count", 0) for r in answered if r.status_code == 200)
    ctx.note(f"one date of birth: {made} surnames reached {reached} children before the stop")
    _expect_blocked(ctx, refused, made, budget, "surnames with one date of birth")
    _harvest_alert(ctx, harvester, "sweep_family_name", since)


def _sibling_searches(ctx: Context) -> list[tuple[str, str]]:
    """(surname, postcode) searches from the sample, one per surname, most children first.

    Brothers and sisters share a surname and an address: each search brings several children,
    and no surname is searched twice, so no one-surname sweep grows. Shielded children are left
    out (a postcode never finds them) and so are the canaries.
    """
    canaries = {row["child_id"] for row in ctx.target.canaries}
    homes = Counter(
        (row["family_name"], row["postcode"])
        for row in ctx.target.sample
        if row["child_id"] not in canaries and row.get("postcode") and not row.get("shielded")
    )
    chosen: dict[str, tuple[str, int]] = {}
    for (family, postcode), size in homes.most_common():
        chosen.setdefault(family, (postcode, size))
    ranked = sorted(chosen.items(), key=lambda item: -item[1][1])
    return [(family, postcode) for family, (postcode, _) in ranked]


def _quota_refusal(ctx: Context, refused: httpx.Response, what: str) -> str:
    """Fail unless ``refused`` is a 429 at a daily count of children; return the alert's rule."""
    status, code = refusal(refused)
    expect(
        status == 429 and code in QUOTA_RULES,
        f"{what}: stopped by {status} {code}, expected 429 with one of {sorted(QUOTA_RULES)}",
    )
    retry = refused.headers.get("retry-after", "")
    expect(retry.isdigit() and int(retry) > 0, f"{what}: the refusal has no Retry-After")
    return QUOTA_RULES[code or ""]


@scenario(
    "harvesting.results-only",
    owasp=["API6:2023", "API3:2023"],
    asvs=["2.4.1"],
    severity=Severity.HIGH,
    guards=["result_quotas"],
    needs=["sample"],
)
def results_only(ctx: Context) -> None:
    """Children shown in search results count: a harvester who never opens a record is capped.

    A youth offending practitioner searches families by surname and address (several brothers
    and sisters a search) and opens no record; the search answers stop at the role's 60 distinct
    children a day with 429, and the LA's management team is alerted.
    """
    harvester = ctx.colleague(RESULTS_ROLE, ctx.manager())
    reached: set[str] = set()
    refused: httpx.Response | None = None
    made = 0
    for family, postcode in _sibling_searches(ctx)[:RESULTS_SEARCHES]:
        pause()
        made += 1
        response = harvester.search(family_name=family, postcode=postcode)
        if response.status_code != 200:
            refused = response
            break
        reached.update(result["child_id"] for result in response.json().get("results", []))
    since = time.monotonic()
    ctx.note(f"search results alone: {made} searches brought {len(reached)} distinct children")
    expect(
        refused is not None,
        f"{len(reached)} distinct children reached one {RESULTS_ROLE} through search results "
        f"in {made} searches (a day's count is {RESULTS_ROLE_QUOTA}), none refused",
    )
    assert refused is not None
    rule = _quota_refusal(ctx, refused, "search results alone")
    expect(
        len(reached) <= RESULTS_ROLE_QUOTA,
        f"{len(reached)} distinct children reached the harvester, above the role's "
        f"{RESULTS_ROLE_QUOTA}",
    )
    _harvest_alert(ctx, harvester, rule, since)


@scenario(
    "harvesting.multi-account",
    owasp=["API6:2023", "API4:2023"],
    asvs=["2.4.1"],
    severity=Severity.CRITICAL,
    guards=["result_quotas"],
    needs=["sample"],
)
def multi_account(ctx: Context) -> None:
    """Several throwaway accounts of one organisation are stopped together before 200 children.

    Each account stays under every per-account threshold (22 searches, 22 surnames and
    postcodes, under its own daily count of children); only a count shared by the organisation
    can stop the team before it has collected 200 distinct children.
    """
    dm = ctx.manager()
    team = [ctx.colleague(TEAM_ROLE, dm) for _ in range(TEAM_SIZE)]
    searches = _sibling_searches(ctx)[: TEAM_SIZE * TEAM_SEARCHES]
    reached: set[str] = set()
    stopped: dict[int, httpx.Response] = {}
    made = 0
    for index, (family, postcode) in enumerate(searches):
        member = index % TEAM_SIZE
        if member in stopped:
            continue
        if len(reached) >= HARVEST_TARGET or len(stopped) == TEAM_SIZE:
            break
        pause()
        made += 1
        response = team[member].search(family_name=family, postcode=postcode)
        if response.status_code != 200:
            stopped[member] = response
            continue
        reached.update(result["child_id"] for result in response.json().get("results", []))
    since = time.monotonic()
    ctx.note(
        f"{TEAM_SIZE} accounts of one organisation: {made} searches brought {len(reached)} "
        f"distinct children; {len(stopped)} accounts refused"
    )
    expect(
        len(reached) < HARVEST_TARGET,
        f"{len(reached)} distinct children reached {TEAM_SIZE} accounts of one organisation "
        f"in {made} searches, not stopped before {HARVEST_TARGET}",
    )
    expect(
        len(stopped) == TEAM_SIZE,
        f"only {len(stopped)} of the {TEAM_SIZE} accounts were refused; the others searched on",
    )
    rules = {member: _quota_refusal(ctx, r, "the team") for member, r in stopped.items()}
    first = next(iter(stopped))  # the first refused: the one the alert must name
    _harvest_alert(ctx, team[first], rules[first], since)
