"""The per-source allowance: every API call counts against its client address's requests a
minute, before anything else is read (a flood of bad tokens is refused like any other)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reference_app.kit.clock import minute_window
from reference_app.kit.controls import Control, enabled
from reference_app.kit.errors import TooManyRequests

if TYPE_CHECKING:
    from reference_app.context import AppContext


def check_source(ctx: AppContext, source: str | None) -> None:
    """Refuse a source (client address) sending more than its per-minute allowance."""
    if source is None or not enabled(ctx.settings, Control.RATE_LIMITS):
        return
    now = ctx.clock.now()
    minute, left = minute_window(now)
    with ctx.limits.open() as ops:
        count = ops.incr(f"source:{source}:{minute}", left, now)
    if count > ctx.settings.limit_source_per_minute:
        raise TooManyRequests(
            "Too many requests from your network; wait and try again.",
            code="source_rate_limited",
            retry_after=left,
        )
