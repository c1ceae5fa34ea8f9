"""What leaves the registry is counted: children returned by searches count towards the daily
quotas, organisations and LAs have daily caps of their own, and sweeps over given names and
surnames are caught; with ``result_quotas`` (or ``harvesting_detection``) off, the harvest runs on.

Each test that counts towards an organisation or LA cap moves its clock to a day of its own and
gives the caps small figures without the per-colleague allowance: the world's organisations and
LAs are shared by every test of the session."""

from __future__ import annotations

import random
from datetime import timedelta

from reference_app.access.permissions import Role
from reference_app.kit.controls import Control
from reference_app.limits.service import ESTABLISHED_AFTER, shared_caps
from reference_app.practitioners.repository import established_colleagues
from tests.fixtures.world import LA_A, World, strict_world, unique_name
from tests.reference_app.limits.test_limits import (
    across_the_top_of_an_hour,
    alerts_about,
    human_pause,
    search,
    view,
)

_rng = random.Random(11)
FAMILY = 9  # children sharing a surname and given name: one search returns all (the cap is 10)
GIVEN = "Ava"


def a_day_of_its_own(w: World) -> None:
    """Move the clock to a day no other test counts in, just after its start."""
    w.clock.advance(86400 * _rng.randrange(400, 40_000))
    w.clock.advance(86400 - (w.clock.now().timestamp() % 86400) + 1)


def families(w: World, count: int, la: str = LA_A) -> list[str]:
    """``count`` surnames, each shared by ``FAMILY`` children of one given name."""
    names = [unique_name() for _ in range(count)]
    for name in names:
        for _ in range(FAMILY):
            w.child(la, family_name=name, given_name=GIVEN)
    return names


def found(w: World, headers: dict[str, str], family_name: str) -> tuple[int, int, str | None]:
    """Search one family: status, number of results, error code."""
    response = search(w, headers, family_name=family_name, given_name=GIVEN)
    body = response.json()
    code = body["error"]["code"] if response.status_code != 200 else None
    return response.status_code, body.get("count", 0), code


def test_search_results_count_towards_the_daily_quota(world: World) -> None:
    with strict_world(world) as w:
        a_day_of_its_own(w)
        names = families(w, 7)
        user = w.new_account(Role.EDUCATION_PRACTITIONER)  # 60 distinct children a day
        headers = w.login(user)
        answers = []
        for name in names:
            answers.append(found(w, headers, name))
            human_pause(w)
        # Six searches return 54 children; the seventh's nine would make 63.
        assert answers[:6] == [(200, FAMILY, None)] * 6
        assert answers[6] == (429, 0, "daily_quota_reached")
        [alert] = alerts_about(w, user, "harvesting")
        assert alert["details"]["rule"] == "daily_quota"
        # The same families again add no one new: a practitioner can go back to them.
        assert found(w, headers, names[0]) == (200, FAMILY, None)


def test_search_results_and_views_share_the_daily_quota(world: World) -> None:
    with strict_world(world) as w:
        a_day_of_its_own(w)
        names = families(w, 6)
        user = w.new_account(Role.EDUCATION_PRACTITIONER)  # 60
        headers = w.login(user)
        for name in names:
            assert found(w, headers, name)[0] == 200  # 54 children found
            human_pause(w)
        others = [w.child(LA_A).id for _ in range(7)]
        codes = []
        for child_id in others:
            codes.append(view(w, headers, child_id).status_code)
            human_pause(w)
        assert codes == [200] * 6 + [429]


def test_with_result_quotas_off_search_results_are_not_counted(world: World) -> None:
    with strict_world(
        world, off=[Control.RESULT_QUOTAS], limit_organisation_children_per_day=20
    ) as w:
        a_day_of_its_own(w)
        names = families(w, 8)
        user = w.new_account(Role.EDUCATION_PRACTITIONER, organisation_id=w.new_organisation())
        headers = w.login(user)
        answers = []
        for name in names:
            answers.append(found(w, headers, name))
            human_pause(w)
        assert answers == [(200, FAMILY, None)] * 8  # 72 children, above 60 and the org's 20
        assert alerts_about(w, user, "harvesting") == []


def test_accounts_of_one_organisation_share_its_daily_cap(world: World) -> None:
    with strict_world(
        world, limit_organisation_children_per_day=25, limit_children_per_colleague=0
    ) as w:
        a_day_of_its_own(w)
        names = families(w, 3)
        org = w.new_organisation()
        first, second = (w.new_account(Role.HEALTH_PRACTITIONER, organisation_id=org) for _ in "ab")
        first_headers, second_headers = w.login(first), w.login(second)
        assert found(w, first_headers, names[0]) == (200, FAMILY, None)
        human_pause(w)
        assert found(w, first_headers, names[1]) == (200, FAMILY, None)  # 18 for the org
        human_pause(w)
        assert found(w, second_headers, names[2]) == (429, 0, "organisation_quota_reached")
        [alert] = alerts_about(w, second, "harvesting")
        assert alert["details"]["rule"] == "organisation_quota"
        # A refusal at the cap names the account once a day; it is not a second signal.
        human_pause(w)
        assert found(w, second_headers, names[2])[2] == "organisation_quota_reached"
        assert len(alerts_about(w, second, "harvesting")) == 1
        assert w.client.get("/api/v1/auth/me", headers=second_headers).status_code == 200
        # Children the organisation already has stay open; views count towards the cap too.
        assert view(w, second_headers, w.child(LA_A).id).status_code == 200  # 19
        another = w.new_account(Role.HEALTH_PRACTITIONER)  # another organisation: its own count
        assert found(w, w.login(another), names[2]) == (200, FAMILY, None)


def test_views_count_towards_the_organisation_cap(world: World) -> None:
    with strict_world(
        world, limit_organisation_children_per_day=3, limit_children_per_colleague=0
    ) as w:
        a_day_of_its_own(w)
        org = w.new_organisation()
        accounts = [w.new_account(Role.SOCIAL_CARE_PRACTITIONER, organisation_id=org) for _ in "ab"]
        sessions = [w.login(a) for a in accounts]
        children = [w.child(LA_A).id for _ in range(4)]
        codes = []
        for index, child_id in enumerate(children):
            response = view(w, sessions[index % 2], child_id)
            codes.append((response.status_code, response.json().get("error", {}).get("code")))
            human_pause(w)
        assert codes[:3] == [(200, None)] * 3
        assert codes[3] == (429, "organisation_quota_reached")


def test_organisations_of_one_local_authority_share_its_daily_cap(world: World) -> None:
    with strict_world(
        world, limit_local_authority_children_per_day=20, limit_children_per_colleague=0
    ) as w:
        a_day_of_its_own(w)
        names = families(w, 3)
        sessions = [
            w.login(w.new_account(role, organisation_id=w.new_organisation()))
            for role in (Role.POLICE_PRACTITIONER, Role.HEALTH_PRACTITIONER)
        ]
        assert found(w, sessions[0], names[0]) == (200, FAMILY, None)
        human_pause(w)
        assert found(w, sessions[1], names[1]) == (200, FAMILY, None)  # 18 for the LA
        human_pause(w)
        assert found(w, sessions[1], names[2]) == (429, 0, "local_authority_quota_reached")


def test_established_colleagues_raise_the_caps(world: World) -> None:
    """A week-old account adds its allowance to its organisation's and LA's caps; a new one not."""
    org = world.new_organisation()
    now = world.clock.now()
    for _ in range(3):
        world.new_account(Role.EDUCATION_PRACTITIONER, organisation_id=org, created_at=now)
    la = world.la_ids[LA_A]
    with world.ctx.sessions() as db:
        new = established_colleagues(
            db, organisation_id=org, local_authority_id=la, created_before=now - ESTABLISHED_AFTER
        )
        later = established_colleagues(
            db,
            organisation_id=org,
            local_authority_id=la,
            created_before=now + timedelta(seconds=1),
        )
    assert new[0] == 0
    assert later[0] == 3
    assert later[1] >= new[1] + 3
    with strict_world(
        world,
        limit_organisation_children_per_day=100,
        limit_local_authority_children_per_day=1000,
        limit_children_per_colleague=20,
    ) as w:
        caps = shared_caps(w.ctx, 3, 10)
        assert (caps.organisation, caps.local_authority) == (160, 1200)


def test_a_given_name_sweep_is_blocked_and_alerted(world: World) -> None:
    with strict_world(world) as w:
        across_the_top_of_an_hour(w)
        user = w.new_account(Role.HEALTH_PRACTITIONER)
        headers = w.login(user)
        # Five surnames with five given names each: no surname reaches six variants.
        surnames = [unique_name() for _ in range(6)]
        codes = []
        for i in range(27):
            given = f"Given{chr(65 + i // 26)}{chr(65 + i % 26)}"
            response = search(w, headers, family_name=surnames[i // 5], given_name=given)
            codes.append(response.status_code)
            human_pause(w)
        assert codes[:24] == [200] * 24
        assert codes[24] == 429  # the 25th given name in an hour
        [alert] = alerts_about(w, user, "harvesting")
        assert alert["details"]["rule"] == "sweep_given_name"


def test_a_surname_sweep_with_one_date_of_birth_is_blocked_and_alerted(world: World) -> None:
    with strict_world(world) as w:
        across_the_top_of_an_hour(w)
        user = w.new_account(Role.SOCIAL_CARE_PRACTITIONER)
        headers = w.login(user)
        codes = []
        for _ in range(31):
            response = search(w, headers, family_name=unique_name(), date_of_birth="2016-04-01")
            codes.append(response.status_code)
            human_pause(w)
        assert codes[:29] == [200] * 29
        assert codes[29] == 429  # the 30th surname in an hour
        [alert] = alerts_about(w, user, "harvesting")
        assert alert["details"]["rule"] == "sweep_family_name"


def test_with_harvesting_detection_off_name_sweeps_run_on(world: World) -> None:
    with strict_world(world, off=[Control.HARVESTING_DETECTION]) as w:
        across_the_top_of_an_hour(w)
        user = w.new_account(Role.SOCIAL_CARE_PRACTITIONER)
        headers = w.login(user)
        codes = set()
        for i in range(35):
            response = search(
                w,
                headers,
                family_name=unique_name(),
                given_name=f"Given{chr(65 + i // 26)}{chr(65 + i % 26)}",
            )
            codes.add(response.status_code)
            human_pause(w)
        assert codes == {200}
        assert alerts_about(w, user, "harvesting") == []


def test_a_filled_cap_names_only_the_first_account_it_refuses(world: World) -> None:
    """Colleagues who meet a cap someone else filled are refused, not reported as harvesters."""
    with strict_world(
        world, limit_organisation_children_per_day=25, limit_children_per_colleague=0
    ) as w:
        a_day_of_its_own(w)
        names = families(w, 3)
        org = w.new_organisation()
        filler, first, later = (
            w.new_account(Role.HEALTH_PRACTITIONER, organisation_id=org) for _ in "abc"
        )
        filling = w.login(filler)
        for name in names[:2]:
            assert found(w, filling, name) == (200, FAMILY, None)
            human_pause(w)
        assert found(w, w.login(first), names[2])[2] == "organisation_quota_reached"
        human_pause(w)
        assert found(w, w.login(later), names[2])[2] == "organisation_quota_reached"
        assert len(alerts_about(w, first, "harvesting")) == 1
        assert alerts_about(w, later, "harvesting") == []
