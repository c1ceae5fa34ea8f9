"""The insider-browsing rules: what one record view says about the person who made it.

Each rule scores a view; a practitioner's views add up to a daily score. Points are chosen so
one strong sign (a relative's or a neighbour's child, a canary) alerts on its own, while weak
signs (a look without involvement, an evening view) alert only when they pile up:

| rule | points | fires when |
| --- | --- | --- |
| canary | 100 | the child is a honeytoken |
| same_address | 60 | the child lives at the viewer's home postcode; the viewer is not involved |
| same_surname | 50 | the child shares the viewer's family name; the viewer is not involved |
| shielded | 40 | the child is shielded or in its household; the viewer is not involved |
| override | 20 | the view used the emergency override (alerted at once anyway) |
| out_of_hours_uninvolved | 25 | outside working hours, not involved |
| out_of_hours | 10 | outside working hours, involved |
| no_involvement | 10 | the viewer is not involved with the child |
| peer_volume | 60 | views today far above the viewer's peers (same role and LA), once a day |

"Involved" is the relationship the view recorded: a current involvement the child's LA confirmed
at least ``involvement_settling_days`` before. A view under an unconfirmed claim records
``self_claimed`` and one under a younger confirmation ``involved_recent``: neither is legitimate
here, so every rule above fires for them (a claim cannot buy a look at a relative's child), except
``no_involvement``, which a confirmed involvement, however young, rules out.

Working hours are 07:00-19:00 local time, Monday to Friday (`CONTACTPOINT_WORKING_DAYS`, 5 by
default, counts working days from Monday), except for roles that work around the clock (police,
children's social care).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reference_app.access.permissions import Role
from reference_app.audit.tags import AccessRelationship

ROUND_THE_CLOCK = frozenset({Role.POLICE_PRACTITIONER, Role.SOCIAL_CARE_PRACTITIONER})
WORKDAY_START, WORKDAY_END = 7, 19
PEER_FACTOR = 4  # views above this multiple of the peer median ...
PEER_FLOOR = 40  # ... and above this many in the day
PEER_MIN_GROUP = 5  # peers needed for a comparison to mean anything


class SnoopRule(StrEnum):
    CANARY = "canary"
    NO_INVOLVEMENT = "no_involvement"
    OUT_OF_HOURS = "out_of_hours"
    OUT_OF_HOURS_UNINVOLVED = "out_of_hours_uninvolved"
    OVERRIDE = "override"
    PEER_VOLUME = "peer_volume"
    SAME_ADDRESS = "same_address"
    SAME_SURNAME = "same_surname"
    SHIELDED = "shielded"


POINTS: dict[SnoopRule, int] = {
    SnoopRule.CANARY: 100,
    SnoopRule.SAME_ADDRESS: 60,
    SnoopRule.SAME_SURNAME: 50,
    SnoopRule.SHIELDED: 40,
    SnoopRule.PEER_VOLUME: 60,
    SnoopRule.OUT_OF_HOURS_UNINVOLVED: 25,
    SnoopRule.OVERRIDE: 20,
    SnoopRule.OUT_OF_HOURS: 10,
    SnoopRule.NO_INVOLVEMENT: 10,
}


@dataclass(frozen=True, slots=True)
class ViewFacts:
    """What the detector knows of one view: references and keyed-hash comparisons only."""

    role: Role
    relationship: str
    local_time: datetime
    canary: bool
    shielded: bool
    same_surname: bool
    same_address: bool
    # Monday to Friday by default; a deployment whose services work weekends says 6 or 7.
    working_days: int = 5


def out_of_hours(role: Role, local_time: datetime, working_days: int = 5) -> bool:
    if role in ROUND_THE_CLOCK:
        return False
    return local_time.weekday() >= working_days or not (
        WORKDAY_START <= local_time.hour < WORKDAY_END
    )


def vouches(relationship: str) -> bool:
    """Whether the relationship a view recorded vouches for it.

    Only a settled, confirmed involvement (or the LA's own data manager) does: ``involved_recent``
    and ``self_claimed`` (a mere claim) are scored as looks without one.
    """
    return relationship in (
        AccessRelationship.INVOLVED.value,
        AccessRelationship.DATA_MANAGER.value,
    )


def score_view(facts: ViewFacts) -> list[SnoopRule]:
    """The rules one view fires."""
    legitimate = vouches(facts.relationship)
    fired: list[SnoopRule] = []
    if facts.canary:
        fired.append(SnoopRule.CANARY)
    if facts.relationship == AccessRelationship.OVERRIDE.value:
        fired.append(SnoopRule.OVERRIDE)
    if not legitimate:
        if facts.relationship == AccessRelationship.SELF_CLAIMED.value:
            fired.append(SnoopRule.NO_INVOLVEMENT)
        if facts.shielded:
            fired.append(SnoopRule.SHIELDED)
        if facts.same_address:
            fired.append(SnoopRule.SAME_ADDRESS)
        elif facts.same_surname:
            fired.append(SnoopRule.SAME_SURNAME)
    if out_of_hours(facts.role, facts.local_time, facts.working_days):
        fired.append(SnoopRule.OUT_OF_HOURS if legitimate else SnoopRule.OUT_OF_HOURS_UNINVOLVED)
    return fired


def peer_outlier(views: int, peer_views: list[int]) -> bool:
    """Whether ``views`` today is far above the median of the peers' (``peer_views``)."""
    if len(peer_views) < PEER_MIN_GROUP:
        return False
    ordered = sorted(peer_views)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return views > PEER_FLOOR and views > PEER_FACTOR * max(median, 1)
