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
| one surname with many dates of birth, postcodes or given names an hour | sweep | signal |
| many dates of birth, postcodes or given names searched in an hour | sweep | harvesting signal |
| many surnames searched in an hour | sweep | harvesting signal |
| identifiers that do not exist or fail their check character | enumeration | harvesting signal |
| evenly spaced requests, as no person makes them | machine timing | harvesting signal |

A harvesting signal refuses the request, blocks the user's searches and views for
``harvest_block_seconds`` and alerts the owning LA's management team; a second signal the same day
reaches the hard threshold, which suspends the account and ends its sessions (``auto_suspend``).
Children returned by a search count as if viewed (``result_quotas``): a harvester who only reads
result lists, or spreads the work over several accounts of one organisation or LA, meets the same
daily figures. The organisation and LA caps are a floor plus an allowance per established
colleague (``limit_*`` settings); accounts younger than a week add nothing, so throwaway accounts
share their organisation's figure instead of bringing their own.
Every threshold scales with ``limits_scale`` (a deployment's tuning knob; the tests' functional
world raises it, the detection tests run the production figures).
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
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
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import TooManyRequests
from reference_app.kit.http import Call
from reference_app.limits.store import LimitOps


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


def _minute(now: datetime) -> tuple[int, int]:
    """The current minute's number and the seconds left in it."""
    epoch = int(now.timestamp())
    return epoch // 60, 60 - epoch % 60


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
        now = self.ctx.clock.now()
        limits = quota(self.ctx, self.principal.role)
        with self.ctx.limits.open() as ops:
            self._check_block(ops, now)
            self._check_rate(ops, now, "search", limits.searches_per_minute)
            rule = self._timing(ops, now) or self._sweep(ops, now, shape)
            if rule:
                raise self._blocked(ops, rule, now)

    def before_view(self, child_id: str) -> None:
        now = self.ctx.clock.now()
        limits = quota(self.ctx, self.principal.role)
        with self.ctx.limits.open() as ops:
            self._check_block(ops, now)
            self._check_rate(ops, now, "view", limits.views_per_minute)
            rule = self._timing(ops, now)
            if rule:
                raise self._blocked(ops, rule, now)
            if not enabled(self.ctx.settings, Control.RATE_LIMITS):
                return
            day, left = _day(now)
            [member] = self._members([child_id], day)
            key = f"distinct:{self.principal.user_id}:{day}"
            _, admitted = ops.add(key, member, left, now, cap=limits.distinct_children_per_day)
            if not admitted:
                raise self._daily_quota_reached(ops, now)
        if enabled(self.ctx.settings, Control.RESULT_QUOTAS):
            caps = self._shared_caps(now)
            with self.ctx.limits.open() as ops:
                self._check_shared(ops, now, [member], caps)

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
        members = self._members(child_ids, day)
        with self.ctx.limits.open() as ops:
            key = f"distinct:{self.principal.user_id}:{day}"
            _, admitted = ops.add_all(key, members, left, now, limits.distinct_children_per_day)
            if not admitted:
                raise self._daily_quota_reached(ops, now)
            self._check_shared(ops, now, members, caps)

    def after_view_miss(self) -> None:
        """Count a view of an identifier that does not exist or fails its check character."""
        if not enabled(self.ctx.settings, Control.HARVESTING_DETECTION):
            return
        now = self.ctx.clock.now()
        hour = int(now.timestamp()) // 3600
        with self.ctx.limits.open() as ops:
            misses = ops.incr(f"miss:{self.principal.user_id}:{hour}", 3600, now)
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

    def _check_shared(
        self, ops: LimitOps, now: datetime, members: Sequence[str], caps: SharedCaps
    ) -> None:
        """Add the children (as hashed) to the organisation's and the LA's sets for today, or
        refuse."""
        day, left = _day(now)
        org, la = self.principal.organisation_id, self.principal.local_authority_id
        for key, cap, rule, code, who in (
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
        ):
            _, admitted = ops.add_all(key, members, left, now, cap)
            if not admitted:
                # One signal per filled cap a day, on the first account refused by it: the LA
                # team hears that the organisation (or LA) reached its cap. Every colleague
                # refused after it met a cap someone else filled, and is not named for it (the
                # refusals stay on the trail); a harvester's own accounts meet their own rules.
                first = ops.incr(f"capped:{key}", left, now) == 1
                raise self._refusal(
                    code,
                    f"{who} looked up as many different children today as allowed; "
                    "your LA management team has been told.",
                    left,
                    follow_ups=self._signal(ops, rule, now) if first else [],
                )

    def _check_block(self, ops: LimitOps, now: datetime) -> None:
        if not enabled(self.ctx.settings, Control.HARVESTING_DETECTION):
            return
        left = ops.ttl(f"block:{self.principal.user_id}", now)
        if left > 0:
            raise self._refusal(BLOCKED, BLOCKED_MESSAGE, left)

    def _check_rate(self, ops: LimitOps, now: datetime, what: str, limit: int) -> None:
        if not enabled(self.ctx.settings, Control.RATE_LIMITS):
            return
        minute, left = _minute(now)
        count = ops.incr(f"rate:{what}:{self.principal.user_id}:{minute}", left, now)
        if count > limit:
            raise self._refusal(
                "rate_limited",
                f"Too many {what}es in a minute; wait and try again."
                if what == "search"
                else f"Too many {what}s in a minute; wait and try again.",
                left,
                audited=count > limit + 1,  # the first refusal in a window is recorded
            )

    def _timing(self, ops: LimitOps, now: datetime) -> Rule | None:
        if not enabled(self.ctx.settings, Control.HARVESTING_DETECTION):
            return None
        sample = _scaled(self.ctx, TIMING_SAMPLE)
        stamp = int(now.timestamp() * 1000)
        stamps = ops.recent(f"timing:{self.principal.user_id}", stamp, 600, sample, now)
        if len(stamps) < sample:
            return None
        gaps = [(a - b) / 1000 for a, b in itertools.pairwise(stamps)]
        mean = statistics.fmean(gaps)
        if mean <= 0 or mean > TIMING_MAX_MEAN_SECONDS:
            return None
        return Rule.MACHINE_TIMING if statistics.pstdev(gaps) / mean < TIMING_MAX_CV else None

    def _sweep(self, ops: LimitOps, now: datetime, shape: SearchShape) -> Rule | None:
        if not enabled(self.ctx.settings, Control.HARVESTING_DETECTION):
            return None
        user, hour = self.principal.user_id, int(now.timestamp()) // 3600
        variant = f"{shape.given_name}|{shape.date_of_birth}|{shape.postcode}"[:64]
        size, _ = ops.add(
            f"sweep:{user}:{hour}:{shape.family_name[:16]}", _short(variant), 3600, now
        )
        if size >= _scaled(self.ctx, SWEEP_SAME_NAME):
            return Rule.SWEEP_SAME_NAME
        # Surnames last: a sweep over dates of birth or postcodes changes the surname each time
        # too, and is named by the field it sweeps.
        for value, rule, threshold in (
            (shape.date_of_birth, Rule.SWEEP_DATE_OF_BIRTH, SWEEP_FIELD),
            (shape.postcode, Rule.SWEEP_POSTCODE, SWEEP_FIELD),
            (shape.given_name, Rule.SWEEP_GIVEN_NAME, SWEEP_FIELD),
            (shape.family_name, Rule.SWEEP_FAMILY_NAME, SWEEP_FAMILY_NAMES),
        ):
            if value is not None:
                size, _ = ops.add(f"{rule}:{user}:{hour}", value[:32], 3600, now)
                if size >= _scaled(self.ctx, threshold):
                    return rule
        return None

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


def check_source(ctx: AppContext, source: str | None) -> None:
    """Refuse a source (client address) sending more than its per-minute allowance."""
    if source is None or not enabled(ctx.settings, Control.RATE_LIMITS):
        return
    now = ctx.clock.now()
    minute, left = _minute(now)
    with ctx.limits.open() as ops:
        count = ops.incr(f"source:{source}:{minute}", left, now)
    if count > ctx.settings.limit_source_per_minute:
        raise TooManyRequests(
            "Too many requests from your network; wait and try again.",
            code="source_rate_limited",
            retry_after=left,
        )
