"""Every refused API request goes on the trail, in its own transaction, bounded per caller.

A refusal (400, 401, 403, 404, 409, 422, 429 ...) is evidence of probing: another LA's child
tried, an admin route knocked on, an export or alert id guessed. The request's own transaction
is rolled back, so the event is written in a new one, and then sealed into the Merkle log like
any other.

The event names the route template, never the raw path (a path holds identifiers), the status,
the stable error code, the principal when known and the source. 401 and 403 keep their tag
``access:denied`` (always recorded); every other refusal is ``access:refused`` (the
``refusal_audit`` control).

Cost: an unauthenticated flood must not turn into a flood of trail rows. Per caller (the user,
or the source address when no one is logged in) and minute, the first
``refusal_audit_per_minute`` refusals are recorded one by one; past that, every N-th is recorded
as a summary (``details.summarised`` = N, the refusals since the last recorded one), so each
caller costs at most N + k/N rows a minute and no refusal goes uncounted for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reference_app.access.principal import Principal
from reference_app.audit.service import RequestInfo, record
from reference_app.audit.tags import EventTag, Outcome
from reference_app.context import AppContext
from reference_app.kit.clock import minute_window
from reference_app.kit.controls import Control, enabled
from reference_app.kit.identifiers import InvalidIdentifier, normalise


@dataclass(frozen=True, slots=True)
class Refusal:
    """What is known of a refused request (never its raw path or body)."""

    method: str
    route: str | None  # the matched route's template; None when no route matched
    status: int
    code: str
    child_id: str | None = None  # the ``child_id`` path parameter, for an authenticated caller


def tag_for(status: int) -> EventTag:
    return EventTag.ACCESS_DENIED if status in (401, 403) else EventTag.ACCESS_REFUSED


def _recorded(
    ctx: AppContext, principal: Principal | None, source: str | None, now: datetime
) -> int:
    """How many refusals this refusal stands for: 1, N for a summary, or 0 (counted only)."""
    caller = f"user:{principal.user_id}" if principal else f"source:{source or 'unknown'}"
    minute, left = minute_window(now)
    with ctx.limits.open() as ops:
        count = ops.incr(f"refusals:{caller}:{minute}", left, now)
    # Scaled like every other limit (limits_scale): a deployment's one tuning knob.
    per_minute = max(1, round(ctx.settings.refusal_audit_per_minute * ctx.settings.limits_scale))
    if count <= per_minute:
        return 1
    return per_minute if (count - per_minute) % per_minute == 0 else 0


def record_refusal(
    ctx: AppContext, refusal: Refusal, *, principal: Principal | None, info: RequestInfo
) -> int | None:
    """Write the refusal to the trail in a transaction of its own; the event id, or None when
    it is not recorded (switched off, or counted into a later summary)."""
    tag = tag_for(refusal.status)
    if tag is EventTag.ACCESS_REFUSED and not enabled(ctx.settings, Control.REFUSAL_AUDIT):
        return None
    stands_for = _recorded(ctx, principal, info.source, ctx.clock.now())
    if stands_for == 0:
        return None
    details: dict[str, object] = {
        "method": refusal.method,
        "route": refusal.route,
        "status": refusal.status,
        "code": refusal.code,
    }
    if stands_for > 1:
        details["summarised"] = stands_for
    with ctx.sessions() as db, db.begin():
        return record(
            db,
            ctx,
            tag,
            info=info,
            principal=principal,
            outcome=Outcome.DENIED,
            child_id=_child_id(refusal.child_id) if principal else None,
            details=details,
        )


def _child_id(raw: str | None) -> str | None:
    """The path's child identifier if it is one (check character and all): anything else typed
    there may be personal data and stays off the trail."""
    if raw is None:
        return None
    try:
        return normalise(raw)
    except InvalidIdentifier:
        return None
