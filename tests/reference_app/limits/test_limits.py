"""Rates, quotas and harvesting detection through the API, with the production figures; and with
each control switched off, the abuse getting through."""

from __future__ import annotations

import random
from typing import Any

from reference_app.access.permissions import Role
from reference_app.kit.clock import minute_window
from reference_app.kit.controls import Control
from tests.fixtures.world import LA_A, Account, World, strict_world

_rng = random.Random(7)


def alerts_about(world: World, account: Account, kind: str) -> list[dict[str, Any]]:
    # A fresh manager: the standing one's one-time code may be spent in this time step.
    manager = world.login(world.new_account(Role.LA_DATA_MANAGER, account.la))
    found = world.client.get(
        "/api/v1/alerts", params={"kind": kind, "limit": 500}, headers=manager
    ).json()
    return [a for a in found if a["subject_user_id"] == account.id]


def view(world: World, headers: dict[str, str], child_id: str) -> Any:
    return world.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": "service_delivery"}
    )


def search(world: World, headers: dict[str, str], **criteria: str) -> Any:
    return world.client.post("/api/v1/children/search", json=criteria, headers=headers)


def across_the_top_of_an_hour(world: World) -> None:
    """Move the clock to 15 s before the top of an hour, so each sweep or probe below (at least
    five pauses of 4 s or more before the request that must be refused) straddles the turn of
    the hour. Sweeps and misses are counted over the last hour, which slides: work split across
    the turn must add up as if it were not. Against windows fixed to the clock hour each of
    these tests fails, as a harvester splitting a sweep at the turn would get through."""
    now = world.clock.now()
    world.clock.advance(3600 - (now.timestamp() % 3600) - 15)


def human_pause(world: World) -> None:
    """Think time as people have it: irregular, seconds to a minute."""
    world.clock.advance(_rng.uniform(4, 40))


def test_too_many_searches_in_a_minute_answer_429_with_retry_after(world: World) -> None:
    with strict_world(world) as w:
        user = w.new_account(Role.EDUCATION_PRACTITIONER)  # 20 searches a minute
        headers = w.login(user)
        now = w.clock.now()
        w.clock.advance(60 - now.second - now.microsecond / 1e6)  # the top of a minute
        for i in range(20):
            assert search(w, headers, family_name=f"Name{i}", given_name="Ava").status_code == 200
            w.clock.advance(_rng.uniform(0.5, 2.5))  # quick, but as a person types
        refused = search(w, headers, family_name="Other", given_name="Ava")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        w.clock.advance(61)
        assert search(w, headers, family_name="Later", given_name="Ava").status_code == 200


def test_with_rate_limits_off_the_burst_gets_through(world: World) -> None:
    with strict_world(world, off=[Control.RATE_LIMITS]) as w:
        headers = w.login(w.new_account(Role.EDUCATION_PRACTITIONER))
        now = w.clock.now()
        w.clock.advance(60 - now.second - now.microsecond / 1e6)  # the top of a minute
        codes = []
        for i in range(30):  # 30 searches in a minute, above the role's 20
            # Ten surnames, each searched three times: no sweep grows past its threshold.
            codes.append(search(w, headers, family_name=f"N{i % 10}", given_name="Ava").status_code)
            w.clock.advance(_rng.uniform(0.5, 1.5))  # quick, but as a person types
        assert codes == [200] * 30


def _view_distinct(w: World, headers: dict[str, str], children: list[str]) -> list[int]:
    codes = []
    for child_id in children:
        codes.append(view(w, headers, child_id).status_code)
        human_pause(w)
    return codes


def test_the_distinct_children_quota_stops_a_harvester_and_alerts(world: World) -> None:
    with strict_world(world) as w:
        user = w.new_account(Role.EDUCATION_PRACTITIONER)  # 60 distinct children a day
        headers = w.login(user)
        children = [w.child(LA_A).id for _ in range(62)]
        codes = _view_distinct(w, headers, children[:60])
        assert codes == [200] * 60
        refused = view(w, headers, children[60])
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "daily_quota_reached"
        assert int(refused.headers["Retry-After"]) > 0
        # Children already seen today stay open to the practitioner.
        assert view(w, headers, children[0]).status_code == 200
        [alert] = alerts_about(w, user, "harvesting")
        assert alert["details"]["rule"] == "daily_quota"
        assert alert["severity"] == "high"


def test_with_rate_limits_off_the_harvester_takes_more_than_the_quota(world: World) -> None:
    with strict_world(world, off=[Control.RATE_LIMITS]) as w:
        user = w.new_account(Role.EDUCATION_PRACTITIONER)
        headers = w.login(user)
        children = [w.child(LA_A).id for _ in range(70)]
        assert _view_distinct(w, headers, children) == [200] * 70
        assert alerts_about(w, user, "harvesting") == []


def test_a_date_of_birth_sweep_is_blocked_and_alerted(world: World) -> None:
    with strict_world(world) as w:
        across_the_top_of_an_hour(w)
        user = w.new_account(Role.HEALTH_PRACTITIONER)
        headers = w.login(user)
        codes = []
        for day in range(1, 10):
            codes.append(
                search(
                    w, headers, family_name="Smith", date_of_birth=f"2015-03-{day:02d}"
                ).status_code
            )
            human_pause(w)
        assert codes[:5] == [200] * 5
        assert codes[5] == 429  # the sixth variant of one surname in an hour
        [alert] = alerts_about(w, user, "harvesting")
        assert alert["details"]["rule"] == "sweep_same_name"
        # The block holds for views too, with its time in Retry-After.
        blocked = view(w, headers, w.child(LA_A).id)
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "harvesting_blocked"
        assert int(blocked.headers["Retry-After"]) > 0


def test_with_harvesting_detection_off_the_sweep_runs_on(world: World) -> None:
    with strict_world(world, off=[Control.HARVESTING_DETECTION]) as w:
        across_the_top_of_an_hour(w)
        user = w.new_account(Role.HEALTH_PRACTITIONER)
        headers = w.login(user)
        codes = set()
        for day in range(1, 20):
            codes.add(
                search(
                    w, headers, family_name="Smith", date_of_birth=f"2015-03-{day:02d}"
                ).status_code
            )
            human_pause(w)
        assert codes == {200}
        assert alerts_about(w, user, "harvesting") == []


def test_identifier_enumeration_is_blocked(world: World) -> None:
    with strict_world(world) as w:
        across_the_top_of_an_hour(w)
        user = w.new_account(Role.SOCIAL_CARE_PRACTITIONER)
        headers = w.login(user)
        codes = []
        for n in range(12):
            codes.append(view(w, headers, f"ABCD-EFGH-{n:03d}X").status_code)
            human_pause(w)
        assert set(codes[:9]) <= {404, 422}
        assert codes[9] == 429
        [alert] = alerts_about(w, user, "harvesting")
        assert alert["details"]["rule"] == "enumeration"


def test_machine_timing_is_blocked_and_a_second_signal_suspends(world: World) -> None:
    with strict_world(world) as w:
        user = w.new_account(Role.POLICE_PRACTITIONER)
        headers = w.login(user)
        children = [w.child(LA_A).id for _ in range(25)]
        codes = []
        for child_id in children:
            codes.append(view(w, headers, child_id).status_code)
            w.clock.advance(3.0)  # a script's steady beat
        assert codes[:19] == [200] * 19
        assert codes[19] == 429
        w.clock.advance(w.ctx.settings.harvest_block_seconds + 1)
        # Back after the block with the same script: the hard threshold suspends at once.
        for child_id in children:
            last = view(w, headers, child_id)
            w.clock.advance(3.0)
            if last.status_code != 200:
                break
        assert last.status_code == 429
        after = view(w, headers, children[0])
        assert after.status_code == 403
        assert after.json()["error"]["code"] == "account_suspended"
        kinds = [a["details"]["rule"] for a in alerts_about(w, user, "harvesting")]
        assert kinds == ["machine_timing", "machine_timing"]
        assert alerts_about(w, user, "harvesting")[0]["details"]["suspended"] is True


def test_with_auto_suspend_off_the_harvester_keeps_the_account(world: World) -> None:
    with strict_world(world, off=[Control.AUTO_SUSPEND]) as w:
        user = w.new_account(Role.POLICE_PRACTITIONER)
        headers = w.login(user)
        children = [w.child(LA_A).id for _ in range(25)]
        for _ in range(2):
            for child_id in children:
                if view(w, headers, child_id).status_code != 200:
                    break
                w.clock.advance(3.0)
            w.clock.advance(w.ctx.settings.harvest_block_seconds + 1)
        assert view(w, headers, children[0]).status_code == 200
        assert all(a["details"]["suspended"] is False for a in alerts_about(w, user, "harvesting"))


def test_a_busy_source_address_is_limited(world: World) -> None:
    with strict_world(world, limit_source_per_minute=5) as w:
        codes = [w.client.get("/api/v1/alerts").status_code for _ in range(6)]
        assert codes[:5] == [401] * 5
        assert codes[5] == 429
        assert w.client.get("/api/v1/alerts").json()["error"]["code"] == "source_rate_limited"


def test_each_strict_world_is_its_own_source(world: World) -> None:
    """The functional world's calls may have spent "testclient"'s allowance for this minute (on
    PostgreSQL the counts are shared): a strict world's production figures must not inherit it."""
    with strict_world(world) as w:
        now = w.clock.now()
        minute, left = minute_window(now)
        spent = w.ctx.settings.limit_source_per_minute
        with w.ctx.limits.open() as ops:
            ops.incr(f"source:testclient:{minute}", left, now, by=spent)
        assert w.source != "testclient"
        assert w.client.get("/api/v1/alerts").status_code == 401


def test_a_busy_source_is_limited_on_public_routes_too(world: World) -> None:
    """A route that authenticates counts the source in its authentication (once: above); a
    public one, such as the login, before its handler."""
    with strict_world(world, limit_source_per_minute=5) as w:
        login = {"username": "nobody", "password": "wrong-password", "otp": "000000"}
        codes = [w.client.post("/api/v1/auth/login", json=login).status_code for _ in range(6)]
        assert 429 not in codes[:5]
        assert codes[5] == 429
        refused = w.client.post("/api/v1/auth/login", json=login).json()
        assert refused["error"]["code"] == "source_rate_limited"
