"""The detector's cost does not grow a statement per viewer: a batch scores any number of views
and peer groups in the same statements, and on PostgreSQL none of them runs once per score."""

from __future__ import annotations

from itertools import product

from reference_app.access.permissions import Role
from reference_app.access.principal import Principal
from reference_app.audit.service import RequestInfo, record, seal_all
from reference_app.audit.tags import AccessRelationship, EventTag
from reference_app.detection.service import scan
from tests.fixtures.statements import Sent, sent_to
from tests.fixtures.world import LA_A, LA_B, Account, World, strict_world
from tests.reference_app.detection.helpers import catch_up, move_to

WEDNESDAY = 2
ROLES = (
    Role.EDUCATION_PRACTITIONER,
    Role.HEALTH_PRACTITIONER,
    Role.VOLUNTARY_PRACTITIONER,
    Role.YOUTH_OFFENDING_PRACTITIONER,
)


def _scanning(w: World, viewers: list[Account], child_id: str) -> Sent:
    """One involved working-hours view by each of ``viewers``, sealed; what scanning sends."""
    with w.ctx.sessions() as db, db.begin():
        for account in viewers:
            who = Principal(
                user_id=account.id,
                username=account.username,
                role=account.role,
                organisation_id=account.organisation_id,
                local_authority_id=w.la_ids[account.la],
                session_id="test",
                permissions=frozenset(),
            )
            record(
                db,
                w.ctx,
                EventTag.CHILD_RECORD_VIEWED,
                info=RequestInfo(request_id=None, source="test"),
                principal=who,
                child_id=child_id,
                reason_code="safeguarding",
                relationship=AccessRelationship.INVOLVED.value,
            )
    seal_all(w.ctx)
    with sent_to(w.ctx.engine) as sent:
        report = scan(w.ctx)
    assert (report.views, sum(report.rules.values()), report.alerts) == (len(viewers), 0, 0)
    return sent


def test_scoring_many_viewers_in_many_peer_groups_sends_what_a_few_do(world: World) -> None:
    with strict_world(world) as w:
        move_to(w, WEDNESDAY, 11)
        catch_up(w)
        # Each viewer alone in a peer group (role and LA) of its own.
        viewers = [w.new_account(role, la) for role, la in product(ROLES, (LA_A, LA_B))]
        child = w.child(LA_A)
        _scanning(w, viewers, child.id)  # their scores for the day now exist
        few, many = _scanning(w, viewers[:2], child.id), _scanning(w, viewers, child.id)
        assert many.count == few.count
        if w.database.backend == "postgresql":
            # The day's scores are written as one array per column, not a statement per score.
            assert many.executions == few.executions == few.count
