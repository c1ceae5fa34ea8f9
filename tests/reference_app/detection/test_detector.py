"""The insider-browsing detector over the sealed log: each rule, the alert and the suspension, and
with the control switched off the snooper unnoticed."""

from __future__ import annotations

import random

import pytest

from reference_app.access.permissions import Role
from reference_app.detection.rules import SnoopRule, ViewFacts, peer_outlier, score_view
from reference_app.kit.controls import Control
from reference_app.services.models import OrganisationKind
from tests.fixtures.world import LA_A, LA_B, World, strict_world
from tests.reference_app.detection.helpers import (
    LONDON,
    alerts_about,
    catch_up,
    detect,
    move_to,
    view,
)

WEDNESDAY, SATURDAY = 2, 5


def test_a_view_of_a_relatives_child_alerts_the_owning_la(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.EDUCATION_PRACTITIONER, display_name="Jo Quillfeather")
        cousin = w.child(LA_A, family_name="Quillfeather")
        assert view(w, w.login(snooper), cousin.id).status_code == 200
        report = detect(w)
        assert report.rules[SnoopRule.SAME_SURNAME] == 1
        [alert] = alerts_about(w, snooper, "snooping")
        assert alert["child_id"] == cousin.id
        assert alert["severity"] == "high"
        assert alert["details"]["rules"] == {"no_involvement": 1, "same_surname": 1}
        assert "Quillfeather" not in str(alert)


def test_a_neighbours_child_and_shielded_records_pile_up_to_a_suspension(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.HEALTH_PRACTITIONER, home_postcode="PR7 7QQ")
        headers = w.login(snooper)
        neighbour = w.child(LA_A, postcode="PR7 7QQ")
        assert view(w, headers, neighbour.id).status_code == 200
        detect(w)
        [first] = alerts_about(w, snooper, "snooping")
        assert (first["severity"], first["details"]["score"]) == ("high", 70)
        for child in [w.child(LA_A, shielded=True) for _ in range(2)]:
            w.clock.advance(120)
            assert view(w, headers, child.id).status_code == 200
        detect(w)
        second = alerts_about(w, snooper, "snooping")[0]
        assert (second["severity"], second["details"]["suspended"]) == ("critical", True)
        assert second["details"]["score"] == 170
        refused = view(w, headers, neighbour.id)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "account_suspended"


def test_involved_working_hours_views_score_nothing(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 10)
        catch_up(w)
        worker = w.new_account(Role.EDUCATION_PRACTITIONER)
        headers = w.login(worker)
        for _ in range(10):
            child = w.child(LA_A)
            w.involve(child, OrganisationKind.SCHOOL)
            assert view(w, headers, child.id, "service_delivery").status_code == 200
            w.clock.advance(300)
        report = detect(w)
        assert report.views == 10
        assert sum(report.rules.values()) == 0
        assert alerts_about(w, worker) == []


def test_out_of_hours_browsing_alerts(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, SATURDAY, 23)
        catch_up(w)
        browser = w.new_account(Role.VOLUNTARY_PRACTITIONER)
        headers = w.login(browser)
        for _ in range(2):
            assert view(w, headers, w.child(LA_A).id).status_code == 200
            w.clock.advance(200)
        report = detect(w)
        assert report.rules[SnoopRule.OUT_OF_HOURS_UNINVOLVED] == 2
        assert len(alerts_about(w, browser, "snooping")) == 1


def test_the_detector_scores_each_view_once(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.EDUCATION_PRACTITIONER, display_name="Al Brindlecombe")
        cousin = w.child(LA_A, family_name="Brindlecombe")
        view(w, w.login(snooper), cousin.id)
        assert detect(w).views == 1
        assert detect(w).views == 0
        assert len(alerts_about(w, snooper, "snooping")) == 1


def _claim(w: World, headers: dict[str, str], child_id: str) -> None:
    made = w.client.post(f"/api/v1/children/{child_id}/involvements", json={}, headers=headers)
    assert made.status_code == 201


def test_a_claimed_involvement_does_not_silence_the_detector(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.EDUCATION_PRACTITIONER, display_name="Jo Pellowarden")
        headers = w.login(snooper)
        cousin = w.child(LA_B, family_name="Pellowarden")
        _claim(w, headers, cousin.id)
        assert view(w, headers, cousin.id, "service_delivery").status_code == 200
        report = detect(w)
        assert report.rules[SnoopRule.SAME_SURNAME] == 1
        [alert] = alerts_about(w, snooper, "snooping", LA_B)
        assert alert["details"]["rules"] == {"no_involvement": 1, "same_surname": 1}


def test_a_young_confirmed_involvement_still_meets_the_rules(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.EDUCATION_PRACTITIONER, display_name="Al Tressingham")
        headers = w.login(snooper)
        young, settled = (w.child(LA_B, family_name="Tressingham") for _ in range(2))
        w.involve(young, OrganisationKind.SCHOOL, LA_A, practitioner=snooper, confirmed_days_ago=1)
        w.involve(settled, OrganisationKind.SCHOOL, LA_A, practitioner=snooper)
        for child in (young, settled):
            assert view(w, headers, child.id, "service_delivery").status_code == 200
        report = detect(w)
        # The settled involvement vouches for its view; the day-old one does not.
        assert report.rules[SnoopRule.SAME_SURNAME] == 1
        assert report.rules[SnoopRule.NO_INVOLVEMENT] == 0


def test_with_claim_confirmation_off_a_claim_silences_the_detector(world: World) -> None:
    with strict_world(world, off=[Control.CLAIM_CONFIRMATION]) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.EDUCATION_PRACTITIONER, display_name="Vi Harrowdene")
        headers = w.login(snooper)
        cousin = w.child(LA_B, family_name="Harrowdene")
        _claim(w, headers, cousin.id)
        assert view(w, headers, cousin.id, "service_delivery").status_code == 200
        assert sum(detect(w).rules.values()) == 0
        assert alerts_about(w, snooper, "snooping", LA_B) == []


def test_with_snooping_detection_off_the_relatives_view_goes_unnoticed(world: World) -> None:
    with strict_world(world, off=[Control.SNOOPING_DETECTION]) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.EDUCATION_PRACTITIONER, display_name="Jo Marrowgate")
        cousin = w.child(LA_A, family_name="Marrowgate")
        assert view(w, w.login(snooper), cousin.id).status_code == 200
        assert detect(w).views == 0
        assert alerts_about(w, snooper, "snooping") == []


def test_with_auto_suspend_off_the_snooper_keeps_the_account(world: World) -> None:
    with strict_world(world, off=[Control.AUTO_SUSPEND]) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        snooper = w.new_account(Role.HEALTH_PRACTITIONER, home_postcode="PR8 8QQ")
        headers = w.login(snooper)
        for child in (
            w.child(LA_A, postcode="PR8 8QQ"),
            *(w.child(LA_A, shielded=True) for _ in range(2)),
        ):
            view(w, headers, child.id)
            w.clock.advance(120)
        detect(w)
        assert {a["details"]["suspended"] for a in alerts_about(w, snooper, "snooping")} == {False}
        assert view(w, headers, w.child(LA_A).id).status_code == 200


def test_volume_far_above_the_peer_group_alerts(world: World) -> None:
    """Six health practitioners of one LA; one views many times what the others do."""
    rng = random.Random(3)
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 9)
        catch_up(w)
        caseload = []
        for _ in range(45):
            child = w.child(LA_A)
            w.involve(child, OrganisationKind.GP_PRACTICE)
            caseload.append(child.id)
        peers = [w.new_account(Role.HEALTH_PRACTITIONER) for _ in range(6)]
        busy = peers[0]
        for account in peers:
            headers = w.login(account)
            for child_id in caseload if account is busy else caseload[:5]:
                assert view(w, headers, child_id, "service_delivery").status_code == 200
                w.clock.advance(rng.uniform(5, 40))
        report = detect(w)
        assert report.rules[SnoopRule.PEER_VOLUME] == 1
        [alert] = alerts_about(w, busy, "snooping")
        assert alert["details"]["rules"] == {"peer_volume": 1}
        for account in peers[1:]:
            assert alerts_about(w, account) == []


# -- the rules on their own -------------------------------------------------------------------


def facts(**overrides: object) -> ViewFacts:
    base: dict[str, object] = {
        "role": Role.EDUCATION_PRACTITIONER,
        "relationship": "involved",
        "local_time": __import__("datetime").datetime(2026, 11, 25, 11, tzinfo=LONDON),
        "canary": False,
        "shielded": False,
        "same_surname": False,
        "same_address": False,
    }
    base.update(overrides)
    return ViewFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"relationship": "self_claimed"}, [SnoopRule.NO_INVOLVEMENT]),
        ({"same_surname": True}, []),  # involved with a relative's child: the team knows
        ({"relationship": "involved_recent"}, []),
        # A young involvement does not vouch for a look at a relative's or a shielded child.
        ({"relationship": "involved_recent", "same_surname": True}, [SnoopRule.SAME_SURNAME]),
        ({"relationship": "involved_recent", "shielded": True}, [SnoopRule.SHIELDED]),
        (
            {"relationship": "self_claimed", "same_surname": True, "same_address": True},
            [SnoopRule.NO_INVOLVEMENT, SnoopRule.SAME_ADDRESS],
        ),
        ({"canary": True}, [SnoopRule.CANARY]),
        ({"relationship": "override"}, [SnoopRule.OVERRIDE]),
        ({"shielded": True, "relationship": "data_manager"}, []),
    ],
)
def test_rules_fired_by_one_view(overrides: dict[str, object], expected: list[SnoopRule]) -> None:
    assert score_view(facts(**overrides)) == expected


def test_round_the_clock_roles_are_not_out_of_hours() -> None:
    night = __import__("datetime").datetime(2026, 11, 28, 2, tzinfo=LONDON)
    assert score_view(facts(local_time=night)) == [SnoopRule.OUT_OF_HOURS]
    assert score_view(facts(local_time=night, role=Role.POLICE_PRACTITIONER)) == []


def test_peer_volume_needs_a_peer_group_and_a_wide_margin() -> None:
    assert peer_outlier(60, [5, 6, 7, 8, 9])
    assert not peer_outlier(60, [5, 6, 7, 8])  # too few peers to compare
    assert not peer_outlier(30, [5, 6, 7, 8, 9])  # below the floor
    assert not peer_outlier(60, [15, 16, 17, 18, 19])  # busy peers: not four times the median


def test_a_seven_day_service_works_weekends_but_not_nights() -> None:
    import datetime as dt

    saturday_noon = dt.datetime(2026, 11, 28, 12, tzinfo=LONDON)
    saturday_night = dt.datetime(2026, 11, 28, 23, tzinfo=LONDON)
    assert score_view(facts(local_time=saturday_noon)) == [SnoopRule.OUT_OF_HOURS]
    assert score_view(facts(local_time=saturday_noon, working_days=7)) == []
    assert score_view(facts(local_time=saturday_night, working_days=7)) == [SnoopRule.OUT_OF_HOURS]


def test_a_view_of_a_shielded_childs_household_scores_as_shielded(world: World) -> None:
    from sqlalchemy import select

    from reference_app.carers.models import ChildCarer
    from reference_app.children.service import refresh_all_households

    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        shielded = w.child(LA_A, shielded=True)
        sibling = w.child(LA_A)
        with w.ctx.sessions() as db, db.begin():
            carer = db.scalar(select(ChildCarer.carer_id).where(ChildCarer.child_id == shielded.id))
            db.add(ChildCarer(child_id=sibling.id, carer_id=carer, relationship="mother"))
            db.flush()
            refresh_all_households(db, w.ctx.crypto)
        browser = w.new_account(Role.EDUCATION_PRACTITIONER)
        assert view(w, w.login(browser), sibling.id).status_code == 200
        report = detect(w)
        assert report.rules[SnoopRule.SHIELDED] == 1
