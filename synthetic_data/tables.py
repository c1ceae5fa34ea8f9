"""Turn generated arrays into plain-value Arrow tables: the one text form every sink reads.

Organisations and practitioners are generated here too, per LA: they are few (about 50,000 and
390,000 nationally) and mostly text.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reference_app.kit import fictional
from synthetic_data.ids import encode
from synthetic_data.organisations import ORGANISATION_TEMPLATES
from synthetic_data.plan import NATIONAL_ROLES, ORGANISATION_KIND, LaLayout, Plan
from synthetic_data.population import (
    LANDLINE,
    POSTCODE_CAPACITY,
    RELATIONSHIPS,
    STATUS_NAMES,
    ChunkData,
)
from synthetic_data.vocab import FEMALE, MALE, vocabulary

GENDERS = ("female", "male")
EMAIL_DOMAINS = tuple(sorted(fictional.RESERVED_EMAIL_DOMAINS))
_AREA_LETTERS = string.ascii_uppercase
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # Royal Mail never uses C, I, K, M, O or V inward
ROLE_ORGANISATIONS: dict[str, tuple[str, ...]] = {
    "education_practitioner": ("primary_school", "secondary_school", "early_years_setting"),
    "health_practitioner": (
        "gp_practice",
        "health_visiting_team",
        "sexual_health_service",
        "mental_health_service",
        "substance_misuse_service",
    ),
    "social_care_practitioner": ("childrens_social_care",),
    "voluntary_practitioner": ("voluntary_organisation",),
    "police_practitioner": ("police",),
    "youth_offending_practitioner": ("youth_offending_team",),
    "la_data_manager": ("la_management_team",),
}
ROLE_ABBREVIATIONS = {
    "education_practitioner": "edu",
    "health_practitioner": "hlt",
    "social_care_practitioner": "scw",
    "voluntary_practitioner": "vol",
    "police_practitioner": "pol",
    "youth_offending_practitioner": "yot",
    "la_data_manager": "ldm",
    "national_auditor": "national-auditor",
    "system_administrator": "registry-admin",
}
_CARER_LANDLINES = [
    number
    for number in map(fictional.drama_landline, range(1000 * len(fictional.DRAMA_LANDLINE_BLOCKS)))
    if not number.startswith("01632")
]
_MOBILES = [fictional.drama_mobile(n) for n in range(1000)]


def town(layout: LaLayout) -> str:
    """The postal town for an LA: its name without ', City of' and the like."""
    return layout.name.split(",")[0]


def postcode(la: int, number: int) -> str:
    """The ``number``-th fictional postcode of LA ``la``: area Q?, never a real address."""
    # Multiplying by a number coprime to the capacity spreads a street's few postcode numbers
    # over the whole range, so units do not all read "1AA".
    p = (number * 7919) % POSTCODE_CAPACITY
    district = (la % 6) * 16 + 1 + p % 16
    inward = (
        f"{(p // 16) % 10}{_INWARD_LETTERS[(p // 160) % 20]}{_INWARD_LETTERS[(p // 3200) % 20]}"
    )
    return f"Q{_AREA_LETTERS[la // 6]}{district} {inward}"


def street_name(la: int, street: int) -> str:
    vocab = vocabulary()
    surname = vocab.surnames[(street * 11 + la * 131) % len(vocab.surnames)]
    suffix = vocab.street_suffixes[(street * 5 + la * 3 + street // 7) % len(vocab.street_suffixes)]
    return f"{surname} {suffix}"


@dataclass(frozen=True)
class Addresses:
    line1: pa.Array
    town: pa.Array
    postcode: pa.Array


def household_addresses(plan: Plan, data: ChunkData) -> Addresses:
    las = data.household_la.tolist()
    line1 = [
        f"{house} {street_name(la, street)}"
        for la, house, street in zip(
            las, data.household_house.tolist(), data.household_street.tolist(), strict=True
        )
    ]
    towns = [town(plan.las[la]) for la in las]
    codes = [postcode(la, p) for la, p in zip(las, data.household_postcode.tolist(), strict=True)]
    return Addresses(pa.array(line1), pa.array(towns), pa.array(codes))


def _take(values: tuple[str, ...] | list[str], indices: np.ndarray) -> pa.Array:
    return pa.array(values).take(pa.array(indices))


def _dates(day_numbers: np.ndarray, missing: int | None = None) -> pa.Array:
    mask = day_numbers == missing if missing is not None else None
    return pa.array(day_numbers.astype(np.int32), type=pa.date32(), mask=mask)


def child_ids(data: ChunkData) -> pa.Array:
    return pa.array(encode(data.child_number))


@dataclass(frozen=True)
class ChunkTables:
    children: pa.Table
    carers: pa.Table
    child_carers: pa.Table
    involvements: pa.Table
    households: pa.Table  # address_line1, town, postcode per household


def chunk_tables(plan: Plan, data: ChunkData) -> ChunkTables:
    """Every row of a chunk as plain values (the form written to Parquet and encrypted for SQL)."""
    vocab = vocabulary()
    codes = [la.code for la in plan.las]
    ids = child_ids(data)
    address = household_addresses(plan, data)
    household_key = data.chunk.index * (1 << 20) + data.child_household.astype(np.int64)
    children = pa.table(
        {
            "child_id": ids,
            "local_authority": _take(codes, data.child_la),
            "gender": _take(GENDERS, data.child_sex),
            "given_name": _take(vocab.first_names, data.child_given),
            "family_name": _take(vocab.surnames, data.child_family),
            "date_of_birth": _dates(data.child_dob),
            "address_line1": address.line1.take(pa.array(data.child_household)),
            "town": address.town.take(pa.array(data.child_household)),
            "postcode": address.postcode.take(pa.array(data.child_household)),
            "shielded": pa.array(data.child_shielded),
            "status": _take(STATUS_NAMES, data.child_status),
            "household_id": pa.array(household_key),
        }
    )
    given = _take(vocab.first_names, data.carer_given)
    family = _take(vocab.surnames, data.carer_family)
    phone = pc.if_else(
        pa.array(data.carer_phone_kind == LANDLINE),
        _take(_CARER_LANDLINES, data.carer_phone % len(_CARER_LANDLINES)),
        _take(_MOBILES, data.carer_phone % 1000),
    )
    has_email = data.carer_email >= 0
    # given.family42@example.org: letters only, so O'Brien-Smith becomes obriensmith.
    number = pa.array(np.maximum(data.carer_email, 0).astype(str))
    local = pc.binary_join_element_wise(
        _letters(given), pc.binary_join_element_wise(_letters(family), number, ""), "."
    )
    domain = _take(EMAIL_DOMAINS, np.maximum(data.carer_email, 0) % len(EMAIL_DOMAINS))
    email = pc.if_else(
        pa.array(has_email),
        pc.binary_join_element_wise(local, domain, "@"),
        pa.nulls(len(given), pa.string()),
    )
    carer_household = pa.array(data.carer_household)
    carers = pa.table(
        {
            "carer_id": pa.array(data.carer_id),
            "household_id": pa.array(
                data.chunk.index * (1 << 20) + data.carer_household.astype(np.int64)
            ),
            "gender": _take(GENDERS, data.carer_sex),
            "given_name": given,
            "family_name": family,
            "date_of_birth": _dates(data.carer_dob),
            "phone": phone,
            "email": email,
            "address_line1": address.line1.take(carer_household),
            "town": address.town.take(carer_household),
            "postcode": address.postcode.take(carer_household),
        }
    )
    child_carers = pa.table(
        {
            "child_id": ids.take(pa.array(data.link_child)),
            "carer_id": pa.array(data.carer_id[data.link_carer]),
            "relationship": _take(RELATIONSHIPS, data.link_relationship),
            "parental_responsibility": pa.array(data.link_responsibility),
        }
    )
    staff = data.involvement_practitioner
    involvements = pa.table(
        {
            "involvement_id": pa.array(data.involvement_id),
            "child_id": ids.take(pa.array(data.involvement_child)),
            "organisation_id": pa.array(data.involvement_org),
            "practitioner_id": pa.array(staff, mask=staff == 0),
            "started_on": _dates(data.involvement_started),
            "is_lead_professional": pa.array(data.involvement_lead),
            "caf_assessment_on": _dates(data.involvement_caf, missing=-1),
            "sensitive": pa.array(data.involvement_sensitive),
            "consent_recorded": pa.array(data.involvement_sensitive),
        }
    )
    households = pa.table(
        {"address_line1": address.line1, "town": address.town, "postcode": address.postcode}
    )
    return ChunkTables(children, carers, child_carers, involvements, households)


def _letters(names: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pc.utf8_lower(names), pattern="[^a-z]", replacement="")


def organisations_table(plan: Plan, la: LaLayout | None) -> pa.Table:
    """The organisations of one LA, or the national ones when ``la`` is None."""
    vocab = vocabulary()
    layout = la if la is not None else plan.las[plan.pilot]
    blocks = la.organisations if la is not None else plan.national_organisations
    rng = np.random.default_rng([plan.options.seed, 2, layout.index if la is not None else 0xFFFF])
    rows: dict[str, list[object]] = {
        k: [] for k in ("organisation_id", "name", "kind", "local_authority", "phone")
    }
    for key, block in blocks.items():
        templates = ORGANISATION_TEMPLATES[key]
        for n, org_id in enumerate(block.ids(), start=1):
            template = templates[int(rng.integers(len(templates)))]
            place = vocab.place_words[int(rng.integers(len(vocab.place_words)))]
            rows["organisation_id"].append(org_id)
            rows["name"].append(template.format(place=place, town=town(layout), n=n))
            rows["kind"].append(ORGANISATION_KIND.get(key, key))
            rows["local_authority"].append(layout.code)
            # Organisations' switchboards come from 01632 960xxx; carers never use that block.
            rows["phone"].append(f"01632 960{org_id % 1000:03d}")
    return pa.table(rows)


def practitioners_table(plan: Plan, la: LaLayout | None) -> pa.Table:
    """The practitioner accounts of one LA, or the national ones when ``la`` is None."""
    vocab = vocabulary()
    layout = la if la is not None else plan.las[plan.pilot]
    rng = np.random.default_rng([plan.options.seed, 3, layout.index if la is not None else 0xFFFF])
    blocks = la.practitioners if la is not None else plan.national_practitioners
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "practitioner_id",
            "username",
            "display_name",
            "email",
            "role",
            "organisation_id",
            "local_authority",
        )
    }
    for role, block in blocks.items():
        if la is not None:
            org_ids = np.concatenate(
                [np.asarray(la.organisations[k].ids()) for k in ROLE_ORGANISATIONS[role]]
            )
        else:
            org_ids = np.array([plan.national_organisations[NATIONAL_ROLES[role][1]].first])
        orgs = org_ids[(rng.random(block.count) * len(org_ids)).astype(np.int64)]
        female = rng.random(block.count) < 0.6
        given = np.where(
            female,
            vocab.adult_names[FEMALE].draw(rng, block.count),
            vocab.adult_names[MALE].draw(rng, block.count),
        )
        family = vocab.surname_table.draw(rng, block.count)
        prefix = f"{layout.code.lower()}-" if la is not None else ""
        for k, practitioner_id in enumerate(block.ids()):
            username = f"{prefix}{ROLE_ABBREVIATIONS[role]}-{k + 1:05d}"
            domain = EMAIL_DOMAINS[practitioner_id % len(EMAIL_DOMAINS)]
            rows["practitioner_id"].append(practitioner_id)
            rows["username"].append(username)
            rows["display_name"].append(
                f"{vocab.first_names[given[k]]} {vocab.surnames[family[k]]}"
            )
            rows["email"].append(f"{username}@{domain}")
            rows["role"].append(role)
            rows["organisation_id"].append(int(orgs[k]))
            rows["local_authority"].append(layout.code)
    return pa.table(rows)
