"""Shared steps for the detection tests: London clock times, catching the detector up, scanning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from reference_app.access.permissions import Role
from reference_app.audit.models import AuditLogEntry
from reference_app.audit.service import seal_all
from reference_app.detection import repository
from reference_app.detection.service import CURSOR, ScanReport, scan
from tests.fixtures.world import Account, World

LONDON = ZoneInfo("Europe/London")


def move_to(world: World, weekday: int, hour: int, minute: int = 0) -> None:
    """Move the world's clock forward to the next ``weekday`` (Monday 0) at ``hour:minute``."""
    now = world.clock.now().astimezone(LONDON)
    target = (now + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    while target.weekday() != weekday:
        target += timedelta(days=1)
    world.clock.advance((target - now).total_seconds())


def catch_up(world: World) -> None:
    """Seal everything so far and start the detector after it: a test scores its own events only."""
    seal_all(world.ctx)
    with world.ctx.sessions() as db, db.begin():
        end = db.scalar(select(func.max(AuditLogEntry.seq)))
        repository.cursor(db, CURSOR).position = -1 if end is None else end


def detect(world: World) -> ScanReport:
    seal_all(world.ctx)
    return scan(world.ctx)


def view(world: World, headers: dict[str, str], child_id: str, reason: str = "safeguarding") -> Any:
    return world.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": reason}
    )


def alerts_about(
    world: World, account: Account, kind: str | None = None, la: str | None = None
) -> list[dict[str, Any]]:
    """Alerts about ``account`` raised to the team of ``la`` (the account's own, by default)."""
    manager = world.login(world.new_account(Role.LA_DATA_MANAGER, la or account.la))
    params: dict[str, Any] = {"limit": 500}
    if kind:
        params["kind"] = kind
    found = world.client.get("/api/v1/alerts", params=params, headers=manager).json()
    return [a for a in found if a["subject_user_id"] == account.id]
