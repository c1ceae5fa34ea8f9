"""Retention driven by a controlled clock: archived at 18, purged six years after, whole batches
on interruption, nothing changed by a second run; archived records for the owning LA's data
managers only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from reference_app.access.permissions import Role
from reference_app.alerts.models import Canary
from reference_app.audit.models import AuditEvent
from reference_app.audit.service import seal_all
from reference_app.audit.verify import verify_log
from reference_app.carers.models import Carer, ChildCarer
from reference_app.children.models import Child, UnshieldRequest
from reference_app.config import Environment
from reference_app.requests.models import ChangeRequest
from reference_app.retention import repository
from reference_app.retention.service import RetentionRefused, run, years_before
from reference_app.services.models import Involvement, OrganisationKind
from tests.fixtures.world import LA_A, LA_B, ChildInfo, PrivateWorld, World


def noon(world: World) -> date:
    """Set the clock to noon UTC today, so no test runs across midnight; return today."""
    now = world.clock.now()
    world.clock.advance((now.replace(hour=12, minute=0, second=0) - now).total_seconds())
    return world.clock.now().date()


def travel_to(world: World, day: date) -> None:
    """Move the clock to noon on ``day``."""
    target = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    world.clock.advance((target - world.clock.now()).total_seconds())


def aged(world: World, years: int, days_to_birthday: int = 0, la: str = LA_A) -> ChildInfo:
    """A child who turns ``years`` in ``days_to_birthday`` days (0: today)."""
    today = world.clock.now().date()
    birthday = today + timedelta(days=days_to_birthday)
    return world.child(la, date_of_birth=years_before(birthday, years).isoformat())


def archived_at(world: World, child_id: str) -> datetime | None:
    with world.ctx.sessions() as db:
        child = db.get(Child, child_id)
        assert child is not None
        return child.archived_at


def events(world: World, tag: str, child_id: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)
    if child_id is not None:
        query = query.where(AuditEvent.child_id == child_id)
    with world.ctx.sessions() as db:
        return list(db.scalars(query))


def count(world: World, model: Any, *where: Any) -> int:
    with world.ctx.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_child_turning_18_tomorrow_is_archived_tomorrow_not_today(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    noon(world)
    tomorrow = aged(world, 18, days_to_birthday=1)
    today = aged(world, 18)
    younger = aged(world, 17)
    before = world.clock.now()
    first = run(world.ctx)
    assert (first.archived, first.live_checked) == (1, 3)
    moment = archived_at(world, today.id)
    assert moment is not None
    assert before <= moment <= world.clock.now()
    assert archived_at(world, tomorrow.id) is None
    world.clock.advance(24 * 3600)
    second = run(world.ctx)
    assert second.archived == 1
    assert archived_at(world, tomorrow.id) is not None
    assert archived_at(world, younger.id) is None
    [event] = events(world, "retention:archived", tomorrow.id)
    assert event.actor_id is None
    assert event.source == "retention"
    assert '"run_id"' in event.details
    assert tomorrow.date_of_birth not in event.details


def test_a_birthday_on_29_february_counts_from_1_march(private_world: PrivateWorld) -> None:
    world = private_world
    child = world.child(date_of_birth="2012-02-29")
    assert run(world.ctx, as_of=date(2030, 2, 28)).archived == 0
    assert run(world.ctx, as_of=date(2030, 3, 1)).archived == 1
    assert archived_at(world, child.id) == datetime(2030, 3, 1, tzinfo=UTC)


def test_purge_comes_at_exactly_six_years_and_takes_everything_but_the_trail(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    archived_on = noon(world)
    child = aged(world, 18)
    sibling = aged(world, 5)
    world.involve(child, OrganisationKind.GP_PRACTICE)
    world.involve(child, OrganisationKind.SCHOOL)
    account = world.new_account(Role.LA_DATA_MANAGER)
    manager = world.login(account)
    raised = world.client.post(
        "/api/v1/requests",
        json={"child_id": child.id, "kind": "shielding", "justification": "Mother asked"},
        headers=manager,
    )
    assert raised.status_code == 201
    with world.ctx.sessions() as db, db.begin():
        db.add(Canary(child_id=child.id, registered_at=world.clock.now()))
        db.add(
            UnshieldRequest(
                child_id=child.id,
                local_authority_id=world.la_ids[LA_A],
                status="pending",
                requested_by=account.id,
                requested_at=world.clock.now(),
            )
        )
        own_carer = db.scalars(select(ChildCarer.carer_id).where(ChildCarer.child_id == child.id))
        [carer_id] = list(own_carer)
        [shared_carer] = list(
            db.scalars(select(ChildCarer.carer_id).where(ChildCarer.child_id == sibling.id))
        )
        # The sibling's carer is the child's too: that carer stays for the sibling.
        db.add(ChildCarer(child_id=child.id, carer_id=shared_carer, relationship="father"))
    assert run(world.ctx).archived == 1

    travel_to(world, years_before(archived_on, -6) - timedelta(days=1))
    assert run(world.ctx).purged == 0
    assert archived_at(world, child.id) is not None

    travel_to(world, years_before(archived_on, -6))
    report = run(world.ctx)
    assert (report.purged, report.carers_purged, report.archived) == (1, 1, 0)
    assert count(world, Child, Child.id == child.id) == 0
    assert count(world, ChildCarer, ChildCarer.child_id == child.id) == 0
    assert count(world, Involvement, Involvement.child_id == child.id) == 0
    assert count(world, Canary, Canary.child_id == child.id) == 0
    assert count(world, ChangeRequest, ChangeRequest.child_id == child.id) == 0
    assert count(world, UnshieldRequest, UnshieldRequest.child_id == child.id) == 0
    assert count(world, Carer, Carer.id == carer_id) == 0
    assert count(world, Carer, Carer.id == shared_carer) == 1
    assert count(world, Child, Child.id == sibling.id) == 1
    # The trail stays, and says what happened and whose the record was.
    tags = [e.tag for e in events(world, "retention:purged", child.id)]
    assert tags == ["retention:purged"]
    [purged] = events(world, "retention:purged", child.id)
    assert f'"local_authority_id":{world.la_ids[LA_A]}' in purged.details
    assert len(events(world, "request:raised", child.id)) == 1


def test_a_deceased_child_is_archived_at_18_and_purged_like_any_other(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    archived_on = noon(world)
    adult = world.child(date_of_birth=years_before(archived_on, 18).isoformat(), deceased=True)
    young = world.child(date_of_birth=years_before(archived_on, 9).isoformat(), deceased=True)
    assert run(world.ctx).archived == 1
    assert archived_at(world, adult.id) is not None
    assert archived_at(world, young.id) is None
    travel_to(world, years_before(archived_on, -6))
    assert run(world.ctx).purged == 1
    assert count(world, Child, Child.id == adult.id) == 0
    assert count(world, Child, Child.id == young.id) == 1


def test_a_second_run_changes_nothing_and_says_so(private_world: PrivateWorld) -> None:
    world = private_world
    noon(world)
    aged(world, 18)
    aged(world, 19)
    aged(world, 5)
    first = run(world.ctx)
    assert (first.archived, first.changed) == (2, True)
    trail_before = count(world, AuditEvent)
    second = run(world.ctx)
    assert (second.archived, second.purged, second.changed) == (0, 0, False)
    assert second.live_checked == 1
    assert count(world, AuditEvent) == trail_before
    # The events written in bulk seal into the log like any other.
    assert seal_all(world.ctx) == trail_before
    with world.ctx.sessions() as db:
        verified = verify_log(db, world.ctx.keyring.audit_public_keys, now=world.clock.now())
    assert verified.ok, verified.findings


def test_an_interrupted_run_keeps_whole_batches_and_the_rerun_finishes(
    private_world: PrivateWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = private_world
    adults = [aged(world, 18 + n) for n in range(5)]
    real_archive = repository.archive
    calls = 0

    def power_cut_on_the_second_batch(db: Any, child_ids: list[str], at: datetime) -> list[str]:
        nonlocal calls
        calls += 1
        archived = real_archive(db, child_ids, at)
        if calls == 2:
            raise RuntimeError("power cut")
        return archived

    monkeypatch.setattr(repository, "archive", power_cut_on_the_second_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        run(world.ctx, batch_size=2)
    # The first batch is whole; the second rolled back entirely, its archive with its events.
    assert count(world, Child, Child.archived_at.is_not(None)) == 2
    assert len(events(world, "retention:archived")) == 2
    monkeypatch.undo()
    rerun = run(world.ctx, batch_size=2)
    assert rerun.archived == 3
    for adult in adults:
        assert len(events(world, "retention:archived", adult.id)) == 1
        assert archived_at(world, adult.id) is not None


def test_a_dry_run_counts_and_changes_nothing(private_world: PrivateWorld) -> None:
    world = private_world
    noon(world)
    child = aged(world, 18)
    report = run(world.ctx, dry_run=True)
    assert (report.archived, report.changed) == (1, False)
    assert archived_at(world, child.id) is None
    assert events(world, "retention:archived") == []


def test_a_future_day_is_refused_in_production(
    private_world: PrivateWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = private_world
    child = aged(world, 17)
    next_year = world.clock.now().date() + timedelta(days=366)
    production = world.ctx.settings.model_copy(update={"environment": Environment.PRODUCTION})
    monkeypatch.setattr(world.ctx, "settings", production)
    with pytest.raises(RetentionRefused, match="after today"):
        run(world.ctx, as_of=next_year)
    assert archived_at(world, child.id) is None
    assert run(world.ctx, as_of=world.clock.now().date() - timedelta(days=1)).archived == 0


def test_after_archiving_only_the_owning_las_data_managers_see_the_record(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    noon(world)
    child = aged(world, 18)
    teacher = world.login(world.new_account(Role.EDUCATION_PRACTITIONER, LA_A))
    own_team = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_A))
    other_team = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_B))
    search = {"family_name": child.family_name, "given_name": child.given_name}

    def view(headers: dict[str, str]) -> Any:
        return world.client.get(
            f"/api/v1/children/{child.id}", headers={**headers, "X-Access-Reason": "safeguarding"}
        )

    def found(headers: dict[str, str]) -> list[str]:
        response = world.client.post("/api/v1/children/search", json=search, headers=headers)
        return [r["child_id"] for r in response.json()["results"]]

    assert view(teacher).status_code == 200
    assert found(teacher) == [child.id]
    assert run(world.ctx).archived == 1

    assert view(teacher).status_code == 404
    assert found(teacher) == []
    assert view(other_team).status_code == 404
    assert found(other_team) == []
    record = view(own_team)
    assert record.status_code == 200
    assert record.json()["archived"] is True
    assert found(own_team) == [child.id]


def test_the_pack_of_a_purged_child_still_gives_its_access_history(
    private_world: PrivateWorld,
) -> None:
    world = private_world
    archived_on = noon(world)
    child = aged(world, 18)
    teacher = world.login(world.new_account(Role.EDUCATION_PRACTITIONER, LA_A))
    world.client.get(
        f"/api/v1/children/{child.id}", headers={**teacher, "X-Access-Reason": "service_delivery"}
    )
    run(world.ctx)
    travel_to(world, years_before(archived_on, -6))
    assert run(world.ctx).purged == 1
    own_team = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_A))
    response = world.client.get(f"/api/v1/subject-access/{child.id}", headers=own_team)
    assert response.status_code == 200
    pack = response.json()
    assert pack["data_held"] is None
    assert pack["purged_at"].startswith(world.clock.now().date().isoformat())
    assert [e["action"] for e in pack["access_history"]] == [
        "child:record:viewed",
        "retention:archived",
        "retention:purged",
        "subject_access:produced",
    ]
    assert pack["access_history"][1]["organisation"] is None
    page = world.client.get(
        f"/api/v1/subject-access/{child.id}", params={"format": "html"}, headers=own_team
    )
    assert "deleted on" in page.text
    assert "the registry (automatic)" in page.text
    other_team = world.login(world.new_account(Role.LA_DATA_MANAGER, LA_B))
    refused = world.client.get(f"/api/v1/subject-access/{child.id}", headers=other_team)
    assert refused.status_code == 404
