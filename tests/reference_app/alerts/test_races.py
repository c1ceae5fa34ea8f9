"""An alert's steps are compare-and-set: a step from a state someone else has since changed is
refused (409 ``state_changed``), so no step is recorded twice and none is undone; of two data
managers racing the same step, exactly one wins."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from reference_app.access.permissions import Role
from reference_app.alerts import service
from reference_app.alerts.models import Alert, AlertStatus
from reference_app.kit.errors import AppError
from reference_app.kit.http import Call
from reference_app.practitioners.models import AccountStatus, Practitioner
from tests.fixtures.stale import INFO, principal_of, read, refused, stale_call
from tests.fixtures.world import LA_A, LA_B, World
from tests.reference_app.alerts.test_reinstatement import manager, status_of, suspended_snooper
from tests.reference_app.alerts.test_workflow import post, raise_canary_alert, tags_for_alert

ACK, INVESTIGATE, CLOSE = AlertStatus.ACKNOWLEDGED, AlertStatus.INVESTIGATING, AlertStatus.CLOSED
# Racing rounds: each a fresh alert and two data managers stepping it at the same moment.
ROUNDS = 15


def _step(target: AlertStatus) -> Any:
    def run(call: Call, who: Any, alert_id: int) -> Alert:
        return service.step(call, who, alert_id, target, None)

    return run


def _subject_status(target: AccountStatus) -> Any:
    def run(call: Call, who: Any, alert_id: int) -> Alert:
        return service.set_subject_status(call, who, alert_id, target, None)

    return run


def _get(call: Call, who: Any, alert_id: int) -> Alert:
    return service.get_alert(call, who, alert_id)


def _subject(call: Call, user_id: int) -> Practitioner:
    found = call.db.get(Practitioner, user_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("stale_step", "meanwhile", "final", "trail"),
    [
        # The reported bug: an acknowledge read before a close lands after it and reopens it.
        (ACK, "close", "closed", ["alert:raised", "alert:closed"]),
        (ACK, "acknowledge", "acknowledged", ["alert:raised", "alert:acknowledged"]),
        (INVESTIGATE, "close", "closed", ["alert:raised", "alert:closed"]),
        (CLOSE, "investigate", "investigating", ["alert:raised", "alert:investigating"]),
    ],
)
def test_a_step_from_a_state_changed_since_it_was_read_is_refused(
    world: World, stale_step: AlertStatus, meanwhile: str, final: str, trail: list[str]
) -> None:
    alert, _ = raise_canary_alert(world)
    who = principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_A))
    with stale_call(world) as call:
        seen = read(call, _get, who, alert["id"])  # held: a session maps its rows weakly
        assert seen.status == "open"
        assert post(world, alert["id"], meanwhile).status_code == 200  # another data manager
        assert refused(call, _step(stale_step), who, alert["id"]) == (409, "state_changed")
    after = world.client.get(
        f"/api/v1/alerts/{alert['id']}", headers=world.headers(Role.LA_DATA_MANAGER, LA_A)
    ).json()
    assert after["status"] == final
    assert tags_for_alert(world, alert["id"]) == trail


def test_a_suspension_read_before_another_is_not_made_or_recorded_twice(world: World) -> None:
    alert, (snooper, _, _) = raise_canary_alert(world)
    who = principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_A))
    with stale_call(world) as call:
        seen = read(call, _get, who, alert["id"]), read(call, _subject, snooper.id)
        assert seen[1].status == "active"
        assert post(world, alert["id"], "suspend-subject").status_code == 200
        stale = _subject_status(AccountStatus.SUSPENDED)
        assert refused(call, stale, who, alert["id"]) == (409, "state_changed")
    assert status_of(world, snooper.id) == "suspended"
    assert Counter(tags_for_alert(world, alert["id"]))["user:suspended"] == 1


def test_two_first_requests_to_reinstate_record_one(world: World) -> None:
    alert_id, snooper_id, _ = suspended_snooper(world)
    late = world.new_account(Role.LA_DATA_MANAGER, LA_B)
    with stale_call(world) as call:
        seen = read(call, _get, principal_of(world, late), alert_id)
        assert seen.reinstatement_requested_by is None
        asked = world.client.post(
            f"/api/v1/alerts/{alert_id}/reinstate-subject", json={}, headers=manager(world, LA_B)
        )
        assert asked.status_code == 202
        stale = _subject_status(AccountStatus.ACTIVE)
        assert refused(call, stale, principal_of(world, late), alert_id) == (409, "state_changed")
    assert status_of(world, snooper_id) == "suspended"
    assert Counter(tags_for_alert(world, alert_id))["user:reinstatement:requested"] == 1


@pytest.mark.parametrize("meanwhile", ["confirmed", "closed"])
def test_a_reinstatement_confirmed_after_another_confirmation_or_a_close_is_refused(
    world: World, meanwhile: str
) -> None:
    alert_id, snooper_id, team = suspended_snooper(world)
    asked = world.client.post(
        f"/api/v1/alerts/{alert_id}/reinstate-subject", json={}, headers=manager(world, LA_B)
    )
    assert asked.status_code == 202
    late = principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_B))
    with stale_call(world) as call:
        seen = read(call, _get, late, alert_id), read(call, _subject, snooper_id)
        assert (seen[0].status, seen[1].status) == ("open", "suspended")
        if meanwhile == "confirmed":  # a second data manager of the employing LA
            done = world.client.post(
                f"/api/v1/alerts/{alert_id}/reinstate-subject",
                json={},
                headers=manager(world, LA_B),
            )
        else:  # the child's LA team closes the alert
            done = world.client.post(f"/api/v1/alerts/{alert_id}/close", json={}, headers=team)
        assert done.status_code == 200
        stale = _subject_status(AccountStatus.ACTIVE)
        assert refused(call, stale, late, alert_id) == (409, "state_changed")
    assert status_of(world, snooper_id) == ("active" if meanwhile == "confirmed" else "suspended")
    reinstated = Counter(tags_for_alert(world, alert_id))["user:reinstated"]
    assert reinstated == (1 if meanwhile == "confirmed" else 0)


def _race(world: World, alert_id: int, steps: list[Any]) -> list[str]:
    """Data managers read the alert (and its subject), then each takes their step at the same
    moment; what each got."""
    racers = [principal_of(world, world.new_account(Role.LA_DATA_MANAGER, LA_A)) for _ in steps]
    # PostgreSQL: all read before any writes, and a later UPDATE waits on the first's row lock.
    # SQLite runs one writer transaction at a time (BEGIN IMMEDIATE): a read cannot overlap
    # another's write, so the racers only start together and run one after the other.
    overlap = world.database.backend == "postgresql"
    with world.ctx.sessions() as db:
        found = db.get(Alert, alert_id)
        assert found is not None
        alert_subject = found.subject_user_id
    barrier = threading.Barrier(len(steps), timeout=30)
    outcomes: list[str] = ["no answer"] * len(steps)

    def run(index: int) -> None:
        with world.ctx.sessions() as db:
            db.begin()
            call = Call(ctx=world.ctx, db=db, info=INFO)
            if not overlap:
                barrier.wait()
            seen = _get(call, racers[index], alert_id), _subject(call, alert_subject)
            if overlap:
                barrier.wait()
            try:
                steps[index](call, racers[index], alert_id)
            except AppError as refusal:
                db.rollback()
                outcomes[index] = f"{type(refusal).status} {refusal.error_code}"
            else:
                db.commit()
                outcomes[index] = "won"
            del seen

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


@pytest.mark.parametrize(
    "steps", [[ACK, ACK], [CLOSE, ACK], [CLOSE, CLOSE]], ids=["ack-ack", "close-ack", "close-close"]
)
def test_of_two_data_managers_stepping_an_alert_at_once_exactly_one_wins(
    world: World, steps: list[AlertStatus]
) -> None:
    tally: Counter[str] = Counter()
    for _ in range(ROUNDS):
        alert, _ = raise_canary_alert(world)
        outcomes = _race(world, alert["id"], [_step(step) for step in steps])
        tally.update(outcomes)
        assert all(o == "won" or o.startswith("409 ") for o in outcomes), outcomes
        trail = tags_for_alert(world, alert["id"])[1:]  # after alert:raised
        won = [f"alert:{step.value}" for step, o in zip(steps, outcomes, strict=True) if o == "won"]
        # Every step that won is on the trail once, no refused one is, and the alert is where
        # the last of them left it: nothing recorded twice, nothing undone.
        assert sorted(trail) == sorted(won), (outcomes, trail)
        with world.ctx.sessions() as db:
            stored = db.get(Alert, alert["id"])
            assert stored is not None
            assert f"alert:{stored.status}" == trail[-1], (outcomes, trail)
        if world.database.backend == "postgresql":
            # Both read 'open' before either wrote: exactly one may win.
            assert outcomes.count("won") == 1, outcomes
    if steps[0] == steps[1]:
        # The same step twice: on SQLite too the second racer reads what the first left, and
        # may not take the step again.
        assert tally["won"] == ROUNDS, tally


def test_of_two_data_managers_suspending_at_once_exactly_one_does(world: World) -> None:
    suspend = _subject_status(AccountStatus.SUSPENDED)
    # PostgreSQL: both read the subject active, the later UPDATE finds it suspended. SQLite: the
    # second reads it suspended already.
    late = "state_changed" if world.database.backend == "postgresql" else "account_unchanged"
    for _ in range(ROUNDS):
        alert, (snooper, _, _) = raise_canary_alert(world)
        outcomes = _race(world, alert["id"], [suspend, suspend])
        assert sorted(outcomes) == [f"409 {late}", "won"], outcomes
        assert status_of(world, snooper.id) == "suspended"
        assert Counter(tags_for_alert(world, alert["id"]))["user:suspended"] == 1
