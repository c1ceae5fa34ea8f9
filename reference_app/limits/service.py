"""Rates, quotas and harvesting detection for searches and record views.

Each search and view passes through here before any data is read:

| limit | key | answer when exceeded |
| --- | --- | --- |
| requests per source per minute | client address | 429 ``source_rate_limited`` |
| searches / views per user per minute | role quota | 429 ``rate_limited`` |
| distinct children viewed or returned by searches per user per day | role quota | 429 \
``daily_quota_reached``, signal |
| distinct children viewed or returned per organisation per day | organisation cap | 429 \
``organisation_quota_reached``, signal |
| distinct children viewed or returned per local authority per day | LA cap | 429 \
``local_authority_quota_reached``, signal |
| one surname with many dates of birth, postcodes or given names in the last hour | sweep | \
signal |
| many dates of birth, postcodes or given names searched in the last hour | sweep | harvesting \
signal |
| many surnames searched in the last hour | sweep | harvesting signal |
| identifiers that do not exist or fail their check character, in the last hour | enumeration \
| harvesting signal |
| evenly spaced requests, as no person makes them | machine timing | harvesting signal |

A harvesting signal refuses the request, blocks the user's searches and views for
``harvest_block_seconds`` and alerts the owning LA's management team; a second signal the same day
reaches the hard threshold, which suspends the account and ends its sessions (``auto_suspend``).
Children returned by a search count as if viewed (``result_quotas``): a harvester who only reads
result lists, or spreads the work over several accounts of one organisation or LA, meets the same
daily figures. The organisation and LA caps are a floor plus an allowance per established
colleague (``limit_*`` settings); accounts younger than a week add nothing, so throwaway accounts
share their organisation's figure instead of bringing their own.
The hour of the sweeps and misses slides (``store.Slide``): work split across the turn of a
clock hour adds up as if it were not. Minutes and days are fixed windows (a rate, a day's count).
Every threshold scales with ``limits_scale`` (a deployment's tuning knob; the tests' functional
world raises it, the detection tests run the production figures).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.alerts.models import AlertKind, AlertSeverity
from reference_app.audit.tags import EventTag, Outcome
from reference_app.context import AppContext
from reference_app.kit.clock import minute_window
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import TooManyRequests
from reference_app.kit.http import Call
from reference_app.limits.store import (
    Add,
    AddAll,
    Incr,
    LimitOps,
    Slide,
    Step,
    Timing,
    Ttl,
)


@dataclass(frozen=True, slots=True)
class Quota:
    searches_per_minute: int
    views_per_minute: int
    distinct_children_per_day: int


# A practitioner works with a caseload: tens of children a day, not hundreds. A school or GP
# practice looks up at most a class or a clinic list; social care and police see more.
ROLE_QUOTAS: dict[Role, Quota] = {
    Role.EDUCATION_PRACTITIONER: Quota(20, 20, 60),
    Role.HEALTH_PRACTITIONER: Quota(30, 30, 100),
    Role.LA_DATA_MANAGER: Quota(40, 40, 150),
    Role.POLICE_PRACTITIONER: Quota(30, 30, 120),
    Role.SOCIAL_CARE_PRACTITIONER: Quota(30, 30, 120),
    Role.VOLUNTARY_PRACTITIONER: Quota(15, 15, 40),
    Role.YOUTH_OFFENDING_PRACTITIONER: Quota(20, 20, 60),
}
_NO_QUOTA = Quota(0, 0, 0)

SWEEP_SAME_NAME = 6  # one surname with this many dates of birth, postcodes or given names an hour
SWEEP_FIELD = 25  # this many distinct dates of birth, postcodes or given names in an hour
SWEEP_FAMILY_NAMES = 30  # this many distinct surnames searched in an hour
ESTABLISHED_AFTER = timedelta(days=7)  # an account this old counts towards its team's caps
# A team's size changes over days, not seconds: each worker counts it once in a while, not on
# every search (an LA has thousands of accounts).
ESTABLISHED_CACHE_SECONDS = 300
_ESTABLISHED: dict[tuple[str, int, int], tuple[float, tuple[int, int]]] = {}
ENUMERATION_MISSES = 10  # identifiers not found or mistyped in an hour
TIMING_SAMPLE = 20  # requests looked at for machine-like timing
TIMING_MAX_CV = 0.15  # their intervals vary less than this (people vary by 50-150 %)
TIMING_MAX_MEAN_SECONDS = 20.0  # and come faster than this on average
SIGNAL_POINTS = 50
BLOCKED = "harvesting_blocked"
BLOCKED_MESSAGE = "Your searches and views are paused while your LA management team reviews them."
HARD_THRESHOLD = 100  # two signals in a day suspend the account


class Rule(StrEnum):
    DAILY_QUOTA = "daily_quota"
    ENUMERATION = "enumeration"
    LOCAL_AUTHORITY_QUOTA = "local_authority_quota"
    MACHINE_TIMING = "machine_timing"
    ORGANISATION_QUOTA = "organisation_quota"
    SWEEP_DATE_OF_BIRTH = "sweep_date_of_birth"
    SWEEP_FAMILY_NAME = "sweep_family_name"
    SWEEP_GIVEN_NAME = "sweep_given_name"
    SWEEP_POSTCODE = "sweep_postcode"
    SWEEP_SAME_NAME = "sweep_same_name"


@dataclass(frozen=True, slots=True)
class SearchShape:
    """What a search asked for, as keyed hashes (hex): enough to spot a sweep, nothing more."""

    family_name: str
    given_name: str | None
    date_of_birth: str | None
    postcode: str | None


def _scaled(ctx: AppContext, value: int) -> int:
    return max(1, round(value * ctx.settings.limits_scale))


def quota(ctx: AppContext, role: Role) -> Quota:
    base = ROLE_QUOTAS.get(role, _NO_QUOTA)
    return Quota(
        _scaled(ctx, base.searches_per_minute),
        _scaled(ctx, base.views_per_minute),
        _scaled(ctx, base.distinct_children_per_day),
    )


@dataclass(frozen=True, slots=True)
class SharedCaps:
    """Distinct children a day for the caller's organisation and local authority."""

    organisation: int
    local_authority: int


def shared_caps(ctx: AppContext, established_in_org: int, established_in_la: int) -> SharedCaps:
    settings, per = ctx.settings, ctx.settings.limit_children_per_colleague
    return SharedCaps(
        _scaled(ctx, settings.limit_organisation_children_per_day + per * established_in_org),
        _scaled(ctx, settings.limit_local_authority_children_per_day + per * established_in_la),
    )


def _seconds_to(end: datetime, now: datetime) -> int:
    return max(1, int((end - now).total_seconds() + 0.999))


def _day(now: datetime) -> tuple[str, int]:
    """The current UTC day and the seconds left in it."""
    end = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(days=1)
    return now.date().isoformat(), _seconds_to(end, now)


@dataclass
class Limiter:
    """The limits for one request by one practitioner."""

    call: Call
    principal: Principal

    @property
    def ctx(self) -> AppContext:
        return self.call.ctx

    # -- entry points ------------------------------------------------------------------------

    def before_search(self, shape: SearchShape) -> None:
        """Every limit on a search before it runs, in one pass of the store: a block, the rate,
        machine timing, then the sweeps."""
        now = self.ctx.clock.now()
        steps = self._entry_steps(now, "search", quota(self.ctx, self.principal.role))
        sweeps: list[Rule] = []
        if enabled(self.ctx.settings, Control.HARVESTING_DETECTION):
            sweeps = self._sweep_steps(now, shape, steps)

        def swept(ops: LimitOps, stopped: int) -> TooManyRequests:
            return self._blocked(ops, sweeps[stopped - (len(steps) - len(sweeps))], now)

        self._pass(steps, now, "search", swept)

    def before_view(self, child_id: str) -> None:
        """Every limit on a record view, in one pass of the store (``store.gate``): a block,
        the rate, machine timing, then the caller's, organisation's and LA's children today."""
        now = self.ctx.clock.now()
        limits = quota(self.ctx, self.principal.role)
        steps = self._entry_steps(now, "view", limits)
        shared: list[tuple[str, Rule, str, str]] = []
        if enabled(self.ctx.settings, Control.RATE_LIMITS):
            day, left = _day(now)
            [member] = self._members([child_id], day)
            key = f"distinct:{self.principal.user_id}:{day}"
            steps.append(Add(key, member, left, limits.distinct_children_per_day))
            if enabled(self.ctx.settings, Control.RESULT_QUOTAS):
                shared = self._shared_steps(now, [member], self._shared_caps(now), steps)

        def counted(ops: LimitOps, stopped: int) -> TooManyRequests:
            if isinstance(steps[stopped], Add):
                return self._daily_quota_reached(ops, now)
            return self._shared_refusal(ops, now, *shared[stopped - (len(steps) - len(shared))])

        self._pass(steps, now, "view", counted)

    def before_results(self, child_ids: Sequence[str]) -> None:
        """Count the children a search is about to return, as if viewed; refuse past a cap.

        The answer is refused whole: a harvester must not learn which results fell under the cap.
        """
        if not child_ids or not enabled(self.ctx.settings, Control.RESULT_QUOTAS):
            return
        now = self.ctx.clock.now()
        limits = quota(self.ctx, self.principal.role)
        caps = self._shared_caps(now)
        day, left = _day(now)
        members = tuple(self._members(child_ids, day))
        key = f"distinct:{self.principal.user_id}:{day}"
        steps: list[Step] = [AddAll(key, members, left, limits.distinct_children_per_day)]
        shared = self._shared_steps(now, members, caps, steps)
        with self.ctx.limits.open() as ops:
            gate = ops.gate(steps, now)
            if gate.stopped == 0:
                raise self._daily_quota_reached(ops, now)
            if gate.stopped is not None:
                raise self._shared_refusal(ops, now, *shared[gate.stopped - 1])

    def after_view_miss(self) -> None:
        """Count a view of an identifier that does not exist or fails its check character."""
        if not enabled(self.ctx.settings, Control.HARVESTING_DETECTION):
            return
        now = self.ctx.clock.now()
        # Each miss a member of its own in a set over the last hour (the hour slides, as the
        # sweeps' do: misses split across the turn of a clock hour still add up).
        miss = f"{int(now.timestamp() * 1000)}:{secrets.token_hex(4)}"
        with self.ctx.limits.open() as ops:
            misses = ops.slide(f"miss:{self.principal.user_id}", miss, 3600, now)
            if misses == _scaled(self.ctx, ENUMERATION_MISSES):
                raise self._blocked(ops, Rule.ENUMERATION, now)

    # -- checks ------------------------------------------------------------------------------

    def _members(self, child_ids: Sequence[str], day: str) -> list[str]:
        """The children as the store counts them: keyed hashes of the day and the id.

        The store (the database or Redis) must not tell who viewed whom: a hash counts each
        child once as well, names none, and with the day in it, links no day's sets to another's.
        """
        index = self.ctx.crypto.index
        return [index.digest("limit-member", f"{day}|{child_id}").hex() for child_id in child_ids]

    def _daily_quota_reached(self, ops: LimitOps, now: datetime) -> TooManyRequests:
        return self._refusal(
            "daily_quota_reached",
            "You have viewed or found as many different children today as your role allows.",
            _day(now)[1],
            follow_ups=self._signal(ops, Rule.DAILY_QUOTA, now),
        )

    def _shared_caps(self, now: datetime) -> SharedCaps:
        from reference_app.practitioners.repository import established_colleagues

        org, la = self.principal.organisation_id, self.principal.local_authority_id
        key = (self.ctx.settings.database_url, org, la)
        cached = _ESTABLISHED.get(key)
        if cached is None or cached[0] <= time.monotonic():
            counts = established_colleagues(
                self.call.db,
                organisation_id=org,
                local_authority_id=la,
                created_before=now - ESTABLISHED_AFTER,
            )
            cached = (time.monotonic() + ESTABLISHED_CACHE_SECONDS, counts)
            _ESTABLISHED[key] = cached
        return shared_caps(self.ctx, *cached[1])

    def _entry_steps(self, now: datetime, what: str, limits: Quota) -> list[Step]:
        """The first checks of a search or view: a block, the rate, machine timing."""
        harvesting = enabled(self.ctx.settings, Control.HARVESTING_DETECTION)
        steps: list[Step] = []
        if harvesting:
            steps.append(Ttl(f"block:{self.principal.user_id}"))
        if enabled(self.ctx.settings, Control.RATE_LIMITS):
            limit = limits.searches_per_minute if what == "search" else limits.views_per_minute
            steps.append(self._rate_step(now, what, limit))
        if harvesting:
            steps.append(self._timing_step(now))
        return steps

    def _pass(
        self,
        steps: list[Step],
        now: datetime,
        what: str,
        refuse: Callable[[LimitOps, int], TooManyRequests],
    ) -> None:
        """Run ``steps`` as one gate; refuse at the step that stopped it (``refuse`` answers
        for the steps after the entry ones, by index)."""
        with self.ctx.limits.open() as ops:
            gate = ops.gate(steps, now)
            if gate.stopped is None:
                return
            step, value = steps[gate.stopped], gate.values[gate.stopped]
            match step:
                case Ttl():
                    raise self._refusal(BLOCKED, BLOCKED_MESSAGE, value)
                case Incr():
                    raise self._rate_refusal(now, what, step.limit, value)
                case Timing():
                    raise self._blocked(ops, Rule.MACHINE_TIMING, now)
            raise refuse(ops, gate.stopped)

    def _shared_steps(
        self, now: datetime, members: Sequence[str], caps: SharedCaps, steps: list[Step]
    ) -> list[tuple[str, Rule, str, str]]:
        """Append the steps adding the children (as hashed) to the organisation's and the LA's
        sets for today; return what refusing at each means (key, rule, code, who)."""
        day, left = _day(now)
        org, la = self.principal.organisation_id, self.principal.local_authority_id
        shared = [
            (
                f"distinct-org:{org}:{day}",
                caps.organisation,
                Rule.ORGANISATION_QUOTA,
                "organisation_quota_reached",
                "Your organisation has",
            ),
            (
                f"distinct-la:{la}:{day}",
                caps.local_authority,
                Rule.LOCAL_AUTHORITY_QUOTA,
                "local_authority_quota_reached",
                "Practitioners in your local authority have",
            ),
        ]
        for key, cap, *_ in shared:
            steps.append(AddAll(key, tuple(members), left, cap))
        return [(key, rule, code, who) for key, _, rule, code, who in shared]

    def _shared_refusal(
        self, ops: LimitOps, now: datetime, key: str, rule: Rule, code: str, who: str
    ) -> TooManyRequests:
        """The refusal when an organisation's or LA's set is full.

        One signal per filled cap a day, on the first account refused by it: the LA team hears
        that the organisation (or LA) reached its cap. Every colleague refused after it met a
        cap someone else filled, and is not named for it (the refusals stay on the trail); a
        harvester's own accounts meet their own rules.
        """
        left = _day(now)[1]
        first = ops.incr(f"capped:{key}", left, now) == 1
        return self._refusal(
            code,
            f"{who} looked up as many different children today as allowed; "
            "your LA management team has been told.",
            left,
            follow_ups=self._signal(ops, rule, now) if first else [],
        )

    def _rate_step(self, now: datetime, what: str, limit: int) -> Incr:
        minute, left = minute_window(now)
        return Incr(f"rate:{what}:{self.principal.user_id}:{minute}", left, limit)

    def _rate_refusal(self, now: datetime, what: str, limit: int, count: int) -> TooManyRequests:
        return self._refusal(
            "rate_limited",
            f"Too many {what}es in a minute; wait and try again."
            if what == "search"
            else f"Too many {what}s in a minute; wait and try again.",
            minute_window(now)[1],
            audited=count > limit + 1,  # the first refusal in a window is recorded
        )

    def _timing_step(self, now: datetime) -> Timing:
        return Timing(
            f"timing:{self.principal.user_id}",
            int(now.timestamp() * 1000),
            600,
            _scaled(self.ctx, TIMING_SAMPLE),
            TIMING_MAX_MEAN_SECONDS,
            TIMING_MAX_CV,
        )

    def _sweep_steps(self, now: datetime, shape: SearchShape, steps: list[Step]) -> list[Rule]:
        """Append the steps that count a search's shape over the last hour, each stopping at its
        rule's threshold; return the rule each names.

        The hour slides (``Slide``): with a window fixed to the clock hour, a sweep split across
        the turn of the hour (29 surnames at 10:59, 29 at 11:00) would stay under every
        threshold in both.
        """
        user = self.principal.user_id
        variant = f"{shape.given_name}|{shape.date_of_birth}|{shape.postcode}"[:64]
        steps.append(
            Slide(
                f"sweep:{user}:{shape.family_name[:16]}",
                _short(variant),
                3600,
                _scaled(self.ctx, SWEEP_SAME_NAME),
            )
        )
        rules = [Rule.SWEEP_SAME_NAME]
        # Surnames last: a sweep over dates of birth or postcodes changes the surname each time
        # too, and is named by the field it sweeps.
        for value, rule, threshold in (
            (shape.date_of_birth, Rule.SWEEP_DATE_OF_BIRTH, SWEEP_FIELD),
            (shape.postcode, Rule.SWEEP_POSTCODE, SWEEP_FIELD),
            (shape.given_name, Rule.SWEEP_GIVEN_NAME, SWEEP_FIELD),
            (shape.family_name, Rule.SWEEP_FAMILY_NAME, SWEEP_FAMILY_NAMES),
        ):
            if value is not None:
                steps.append(
                    Slide(f"{rule}:{user}", value[:32], 3600, _scaled(self.ctx, threshold))
                )
                rules.append(rule)
        return rules

    # -- consequences ------------------------------------------------------------------------

    def _refusal(
        self,
        code: str,
        message: str,
        retry_after: int,
        *,
        audited: bool = True,
        follow_ups: list[Callable[[], None]] | None = None,
    ) -> TooManyRequests:
        """A 429, recorded (and followed up) once the request's own transaction is over."""
        error = TooManyRequests(message, code=code, retry_after=retry_after)
        error.audited = True
        if audited:
            error.follow_ups.append(partial(self._record_refusal, code))
        error.follow_ups.extend(follow_ups or [])
        return error

    def _record_refusal(self, code: str) -> None:
        with self.ctx.sessions() as db, db.begin():
            Call(self.ctx, db, self.call.info).audit(
                EventTag.LIMIT_EXCEEDED,
                principal=self.principal,
                outcome=Outcome.DENIED,
                details={"code": code},
            )

    def _blocked(self, ops: LimitOps, rule: Rule, now: datetime) -> TooManyRequests:
        """Score a harvesting signal, pause the user's searches and views, and refuse."""
        follow_ups = self._signal(ops, rule, now)
        block_for = self.ctx.settings.harvest_block_seconds
        ops.incr(f"block:{self.principal.user_id}", block_for, now)
        return self._refusal(BLOCKED, BLOCKED_MESSAGE, block_for, follow_ups=follow_ups)

    def _signal(self, ops: LimitOps, rule: Rule, now: datetime) -> list[Callable[[], None]]:
        """Add a signal to today's score; alert on the first, suspend at the hard threshold."""
        day, day_left = _day(now)
        score = ops.incr(f"harvest:{self.principal.user_id}:{day}", day_left, now, by=SIGNAL_POINTS)
        first = score == SIGNAL_POINTS
        hard = score >= HARD_THRESHOLD and score - SIGNAL_POINTS < HARD_THRESHOLD
        if first or hard:
            return [partial(self._alert_and_maybe_suspend, rule, score, hard)]
        return []

    def _alert_and_maybe_suspend(self, rule: Rule, score: int, hard: bool) -> None:
        from reference_app.alerts.service import raise_alert
        from reference_app.practitioners import repository as accounts
        from reference_app.practitioners.models import AccountStatus
        from reference_app.practitioners.service import set_status

        suspend = hard and enabled(self.ctx.settings, Control.AUTO_SUSPEND)
        with self.ctx.sessions() as db, db.begin():
            call = Call(self.ctx, db, self.call.info)
            summary = (
                "Harvesting: account suspended at the hard threshold"
                if suspend
                else "Harvesting: searches and views look like bulk collection"
            )
            raise_alert(
                call,
                self.principal,
                kind=AlertKind.HARVESTING,
                severity=AlertSeverity.CRITICAL if hard else AlertSeverity.HIGH,
                local_authority_id=self.principal.local_authority_id,
                child_id=None,
                audit_event_id=None,
                summary=summary,
                details={"rule": rule.value, "score": score, "suspended": suspend},
            )
            if suspend:
                user = accounts.by_id(db, self.principal.user_id)
                if user is not None:
                    set_status(
                        call,
                        user,
                        AccountStatus.SUSPENDED,
                        by=None,
                        details={"by": "harvesting_detection", "rule": rule.value},
                    )


def _short(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()
