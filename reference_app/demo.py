"""A small deterministic population and one persona per role, for `contactpoint serve --demo`.

Fictional by construction: phone numbers come from the ranges Ofcom reserves for drama
(07700 900000-900999 mobile, 01632 960000-960999 landline), emails from the reserved
example.com/.org/.net domains (RFC 2606), and every name is drawn from short stock lists.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reference_app.access.permissions import Role
from reference_app.carers.models import Carer, ChildCarer
from reference_app.carers.service import carer_columns
from reference_app.children.models import Child, Gender
from reference_app.children.service import child_columns
from reference_app.context import AppContext
from reference_app.kit import identifiers
from reference_app.localauthorities.models import LocalAuthority
from reference_app.localauthorities.service import seed_local_authorities
from reference_app.practitioners.service import create_account
from reference_app.services.models import Involvement, Organisation, OrganisationKind

# Lancashire (the north-west pilot), Manchester, Camden.
DEMO_LAS = ("E10000017", "E08000003", "E09000007")
POSTCODE_AREAS = {"E10000017": "PR", "E08000003": "M", "E09000007": "NW"}
GIVEN_F = (
    "Amelia",
    "Olivia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Freya",
    "Grace",
    "Poppy",
    "Sophia",
    "Evie",
    "Ella",
    "Aria",
    "Willow",
    "Rosie",
    "Maya",
    "Sienna",
    "Ruby",
    "Zara",
)
GIVEN_M = (
    "Oliver",
    "George",
    "Noah",
    "Arthur",
    "Leo",
    "Harry",
    "Oscar",
    "Jack",
    "Charlie",
    "Theo",
    "Freddie",
    "Alfie",
    "Henry",
    "Jacob",
    "Archie",
    "Finley",
    "Muhammad",
    "Ezra",
    "Reuben",
    "Tommy",
)
ADULT_F = ("Sarah", "Emma", "Laura", "Rachel", "Claire", "Hannah", "Gemma", "Kirsty")
ADULT_M = ("James", "David", "Daniel", "Paul", "Mark", "Craig", "Lee", "Stuart")
SURNAMES = (
    "Smith",
    "Smyth",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Thomson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Hughes",
    "O'Brien",
    "Okafor",
    "Nowak",
    "Campbell",
    "Kaur",
)
STREETS = (
    "Mill Lane",
    "Church Street",
    "Station Road",
    "Victoria Road",
    "Park Avenue",
    "Queens Road",
    "Orchard Close",
    "Meadow Way",
    "Chapel Street",
    "Brook Lane",
)
ORG_KINDS = (
    (OrganisationKind.SCHOOL, "{la} Primary School"),
    (OrganisationKind.SCHOOL, "{la} High School"),
    (OrganisationKind.EARLY_YEARS_SETTING, "{la} Little Acorns Nursery"),
    (OrganisationKind.GP_PRACTICE, "{la} Riverside Medical Practice"),
    (OrganisationKind.HEALTH_VISITING_TEAM, "{la} Health Visiting Team"),
    (OrganisationKind.CHILDRENS_SOCIAL_CARE, "{la} Children's Social Care"),
    (OrganisationKind.YOUTH_OFFENDING_TEAM, "{la} Youth Offending Team"),
    (OrganisationKind.VOLUNTARY_ORGANISATION, "{la} Family Support Trust"),
    (OrganisationKind.POLICE, "{la} Public Protection Unit"),
    (OrganisationKind.SEXUAL_HEALTH_SERVICE, "{la} Young People's Sexual Health Service"),
    (OrganisationKind.LA_MANAGEMENT_TEAM, "{la} ContactPoint Management Team"),
)
PERSONA_ORG = {
    Role.EDUCATION_PRACTITIONER: OrganisationKind.SCHOOL,
    Role.HEALTH_PRACTITIONER: OrganisationKind.GP_PRACTICE,
    Role.SOCIAL_CARE_PRACTITIONER: OrganisationKind.CHILDRENS_SOCIAL_CARE,
    Role.YOUTH_OFFENDING_PRACTITIONER: OrganisationKind.YOUTH_OFFENDING_TEAM,
    Role.POLICE_PRACTITIONER: OrganisationKind.POLICE,
    Role.VOLUNTARY_PRACTITIONER: OrganisationKind.VOLUNTARY_ORGANISATION,
    Role.LA_DATA_MANAGER: OrganisationKind.LA_MANAGEMENT_TEAM,
    Role.NATIONAL_AUDITOR: OrganisationKind.NATIONAL_AUDIT,
    Role.SYSTEM_ADMINISTRATOR: OrganisationKind.REGISTRY_OPERATIONS,
}
REFERENCE_DATE = date(2026, 1, 1)


@dataclass(frozen=True)
class Persona:
    username: str
    password: str
    totp_secret: str
    role: str
    organisation: str
    local_authority: str


def drama_mobile(rng: random.Random) -> str:
    """A mobile number from Ofcom's drama range 07700 900000-900999."""
    return f"07700 900{rng.randrange(1000):03d}"


def drama_landline(rng: random.Random) -> str:
    """A landline from Ofcom's drama range 01632 960000-960999."""
    return f"01632 960{rng.randrange(1000):03d}"


def seed_organisations(
    db: Session, las: dict[str, LocalAuthority], rng: random.Random
) -> dict[tuple[str, OrganisationKind], list[Organisation]]:
    orgs: dict[tuple[str, OrganisationKind], list[Organisation]] = {}
    for code in DEMO_LAS:
        la = las[code]
        for kind, template in ORG_KINDS:
            org = Organisation(
                name=template.format(la=la.name),
                kind=kind.value,
                local_authority_id=la.id,
                phone=drama_landline(rng),
            )
            db.add(org)
            orgs.setdefault((code, kind), []).append(org)
    pilot = las[DEMO_LAS[0]]
    for kind, name in (
        (OrganisationKind.NATIONAL_AUDIT, "ContactPoint National Audit Team"),
        (OrganisationKind.REGISTRY_OPERATIONS, "Registry Operations"),
    ):
        org = Organisation(
            name=name, kind=kind.value, local_authority_id=pilot.id, phone=drama_landline(rng)
        )
        db.add(org)
        orgs[(DEMO_LAS[0], kind)] = [org]
    db.flush()
    return orgs


def seed_children(
    ctx: AppContext,
    db: Session,
    las: dict[str, LocalAuthority],
    orgs: dict[tuple[str, OrganisationKind], list[Organisation]],
    rng: random.Random,
    count: int,
) -> list[Child]:
    children: list[Child] = []
    now = ctx.clock.now()
    for n in range(count):
        code = DEMO_LAS[n % len(DEMO_LAS)]
        la = las[code]
        gender = rng.choice((Gender.FEMALE, Gender.MALE))
        given = rng.choice(GIVEN_F if gender is Gender.FEMALE else GIVEN_M)
        family = rng.choice(SURNAMES)
        dob = REFERENCE_DATE - timedelta(days=rng.randrange(1, 18 * 365))
        address = {
            "line1": f"{rng.randrange(1, 200)} {rng.choice(STREETS)}",
            "line2": None,
            "town": la.name,
            "postcode": f"{POSTCODE_AREAS[code]}{rng.randrange(1, 20)} "
            f"{rng.randrange(1, 10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
        }
        child = Child(
            id=identifiers.from_random_bytes(rng.randbytes(8)),
            local_authority_id=la.id,
            gender=gender.value,
            shielded=n % 40 == 7,
            created_at=now,
            updated_at=now,
            **child_columns(
                ctx.crypto,
                given_name=given,
                family_name=family,
                date_of_birth=dob.isoformat(),
                address=address,
            ),
        )
        db.add(child)
        children.append(child)
        db.flush()
        _seed_carers(ctx, db, rng, child, family, address)
        _seed_involvements(db, rng, child, code, dob, orgs, now)
    db.flush()
    return children


def _seed_carers(
    ctx: AppContext,
    db: Session,
    rng: random.Random,
    child: Child,
    family: str,
    address: dict[str, Any],
) -> None:
    parents = [("mother", rng.choice(ADULT_F))]
    if rng.random() > 0.25:
        parents.append(("father", rng.choice(ADULT_M)))
    for relationship, given in parents:
        domain = rng.choice(("example.com", "example.org", "example.net"))
        carer = Carer(
            **carer_columns(
                ctx.crypto,
                {
                    "given_name": given,
                    "family_name": family,
                    "phone": drama_mobile(rng),
                    "email": f"{given.lower()}.{rng.randrange(10000)}@{domain}",
                },
            )
        )
        carer.address_enc = ctx.crypto.cipher.encrypt(
            json.dumps(address, sort_keys=True), "carers.address"
        )
        db.add(carer)
        db.flush()
        db.add(
            ChildCarer(
                child_id=child.id,
                carer_id=carer.id,
                relationship=relationship,
                parental_responsibility=True,
            )
        )


def _seed_involvements(
    db: Session,
    rng: random.Random,
    child: Child,
    code: str,
    dob: date,
    orgs: dict[tuple[str, OrganisationKind], list[Organisation]],
    now: Any,
) -> None:
    age = (REFERENCE_DATE - dob).days // 365

    def involve(
        kind: OrganisationKind, *, lead: bool = False, caf: bool = False, sensitive: bool = False
    ) -> None:
        # One of each kind per LA, except schools: the primary, or the high school from 11.
        candidates = orgs[(code, kind)]
        org = candidates[-1] if kind is OrganisationKind.SCHOOL and age >= 11 else candidates[0]
        db.add(
            Involvement(
                child_id=child.id,
                organisation_id=org.id,
                practitioner_id=None,
                # Never the birth date itself: service dates are stored in clear.
                started_on=max(
                    dob + timedelta(days=rng.randrange(7, 60)),
                    REFERENCE_DATE - timedelta(days=rng.randrange(30, 2000)),
                ),
                is_lead_professional=lead,
                caf_assessment_on=REFERENCE_DATE - timedelta(days=rng.randrange(10, 300))
                if caf
                else None,
                sensitive=sensitive,
                consent_recorded=sensitive,
                created_at=now,
            )
        )

    involve(OrganisationKind.GP_PRACTICE)
    if age < 4:
        involve(OrganisationKind.EARLY_YEARS_SETTING)
    if age < 5:
        involve(OrganisationKind.HEALTH_VISITING_TEAM)
    if 4 <= age <= 17:
        involve(OrganisationKind.SCHOOL)
    if rng.random() < 0.08:
        involve(OrganisationKind.CHILDRENS_SOCIAL_CARE, lead=True, caf=True)
    if age >= 10 and rng.random() < 0.05:
        involve(OrganisationKind.YOUTH_OFFENDING_TEAM)
    if age >= 13 and rng.random() < 0.05:
        involve(OrganisationKind.SEXUAL_HEALTH_SERVICE, sensitive=True)


def seed_personas(
    ctx: AppContext,
    db: Session,
    orgs: dict[tuple[str, OrganisationKind], list[Organisation]],
    las: dict[str, LocalAuthority],
) -> list[Persona]:
    """Create one account per role in the pilot LA and return their credentials."""
    personas: list[Persona] = []
    code = DEMO_LAS[0]
    for role, kind in sorted(PERSONA_ORG.items()):
        org = orgs[(code, kind)][0]
        username = f"demo.{role.value.replace('_', '-')}"
        account = create_account(
            ctx,
            db,
            username=username,
            display_name=f"Demo {role.value.replace('_', ' ')}",
            role=role,
            organisation=org,
            email=f"{username}@example.org",
        )
        personas.append(
            Persona(
                username=username,
                password=account.password,
                totp_secret=account.totp_secret,
                role=role.value,
                organisation=org.name,
                local_authority=las[code].ons_code,
            )
        )
    return personas


def seed_demo(ctx: AppContext, *, children: int = 300, seed: int = 2009) -> list[Persona]:
    """Seed an empty database: LAs, organisations, children with carers and services, personas."""
    rng = random.Random(seed)  # noqa: S311 (deterministic fiction, not secrets)
    with ctx.sessions() as db, db.begin():
        if db.scalar(select(Child.id).limit(1)) is not None:
            raise RuntimeError("the database already holds children; not seeding again")
        las = seed_local_authorities(db)
        orgs = seed_organisations(db, las, rng)
        seed_children(ctx, db, las, orgs, rng, children)
        return seed_personas(ctx, db, orgs, las)


def write_personas(path: Path, personas: list[Persona]) -> None:
    """Write the personas file the load and security tests read (owner-readable only)."""
    path.write_text(json.dumps([p.__dict__ for p in personas], indent=2), encoding="utf-8")
    path.chmod(0o600)
