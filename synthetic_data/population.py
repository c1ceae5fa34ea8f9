"""Generate one chunk of the population as NumPy arrays: households, children, carers, services.

Everything is drawn in bulk from a generator seeded by (seed, chunk index), so a chunk is the
same on every machine and for any number of workers. Strings stay as vocabulary indices here;
`tables` turns them into text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from synthetic_data import figures
from synthetic_data.ids import permute
from synthetic_data.plan import (
    CARERS_PER_CHILD_MAX,
    CHUNK_CHILDREN,
    INVOLVEMENTS_PER_CHILD_MAX,
    Block,
    Chunk,
    Plan,
)
from synthetic_data.vocab import FEMALE, MALE, vocabulary

I8 = npt.NDArray[np.int8]
I16 = npt.NDArray[np.int16]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

EPOCH = date(1970, 1, 1)
YEAR = 365.25

# Child status codes (children in need include the two that follow).
NONE, CHILD_IN_NEED, PROTECTION_PLAN, LOOKED_AFTER = 0, 1, 2, 3
STATUS_NAMES = ("none", "child_in_need", "child_protection_plan", "looked_after")
# Carer relationship codes, in the registry's vocabulary.
RELATIONSHIPS = ("mother", "father", "step_parent", "foster_carer")
MOTHER, FATHER, STEP_PARENT, FOSTER_CARER = 0, 1, 2, 3
# Phone kinds: an Ofcom drama mobile, or a drama landline (organisations use 01632 only).
MOBILE, LANDLINE = 0, 1
CARER_LANDLINE_BLOCKS = 15  # the drama landline blocks other than 01632 960xxx
POSTCODE_CAPACITY = 16 * 10 * 20 * 20  # districts x inward digit x two inward letters
# Organisation layout keys in the order involvements are drawn.
UNIVERSAL = ("gp_practice", "primary_school", "secondary_school", "early_years_setting")
SENSITIVE = ("sexual_health_service", "mental_health_service", "substance_misuse_service")


def days(d: date) -> int:
    return (d - EPOCH).days


@functools.cache
def age_distribution(as_of: date) -> tuple[I32, npt.NDArray[np.float64]]:
    """Ages in days (0 .. just under 18 years) and the chance of each, following births by year."""
    first = date(as_of.year - 18, as_of.month, min(as_of.day, 28)) + timedelta(days=1)
    n = (as_of - first).days + 1
    ages = np.arange(n, dtype=np.int32)
    years = [(as_of - timedelta(days=int(a))).year for a in ages]
    known = sorted(figures.BIRTHS_BY_YEAR)
    weight = np.array(
        [
            figures.BIRTHS_BY_YEAR[min(max(y, known[0]), known[-1])]
            / (366 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 365)
            for y in years
        ]
    )
    return ages, weight / weight.sum()


@dataclass
class ChunkData:
    """One chunk's rows, as arrays; local indices link children, households and carers."""

    chunk: Chunk
    # children
    child_number: U64
    child_la: I16
    child_sex: I8
    child_given: I32
    child_family: I32
    child_dob: I32  # days since 1970-01-01
    child_household: I32
    child_shielded: Bools
    child_status: I8
    # households
    household_la: I16
    household_house: I16
    household_street: I32
    household_postcode: I32
    # carers
    carer_id: I64
    carer_household: I32
    carer_sex: I8
    carer_given: I32
    carer_family: I32
    carer_dob: I32
    carer_phone_kind: I8
    carer_phone: I32
    carer_email: I32  # -1: no email
    # child-carer links
    link_child: I32
    link_carer: I32
    link_relationship: I8
    link_responsibility: Bools
    # involvements
    involvement_id: I64
    involvement_child: I32
    involvement_org: I32
    involvement_practitioner: I32  # 0: an organisation-level involvement
    involvement_started: I32
    involvement_lead: Bools
    involvement_caf: I32  # -1: no CAF assessment
    involvement_sensitive: Bools
    # positions (into the children arrays) of the children in the load-test sample
    sample: I64

    @property
    def children(self) -> int:
        return len(self.child_number)


def _household_sizes(rng: np.random.Generator, n: int) -> I32:
    sizes_p = figures.CHILDREN_PER_FAMILY
    values = np.array(list(sizes_p), dtype=np.int32)
    p = np.array(list(sizes_p.values()))
    sizes = np.empty(0, dtype=np.int32)
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, rng.choice(values, size=n // 2 + 16, p=p / p.sum())])
    total = np.cumsum(sizes)
    count = int(np.searchsorted(total, n)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(total[count - 1]) - n
    return sizes


def _space_siblings(age: I32, household: I32) -> I32:
    """Oldest first within each household, at least MIN_SIBLING_GAP_DAYS apart (else twins)."""
    gap = figures.MIN_SIBLING_GAP_DAYS
    starts = np.flatnonzero(np.r_[True, household[1:] != household[:-1]])
    position = np.arange(len(age)) - np.repeat(starts, np.diff(np.r_[starts, len(age)]))
    # a'[j] = min over k <= j of (a[k] - gap * (j - k)): a running minimum that restarts per
    # household, done in one pass by lowering each household far below the one before.
    big = np.int64(100_000)
    shifted = age.astype(np.int64) + gap * position - household.astype(np.int64) * big
    spaced = np.minimum.accumulate(shifted) + household.astype(np.int64) * big - gap * position
    born = spaced >= 0
    last_born = np.maximum.accumulate(np.where(born, np.arange(len(age)), 0))
    spaced = np.where(born, spaced, spaced[last_born])
    result: I32 = spaced.astype(np.int32)
    return result


def _pick(rng: np.random.Generator, first: I32, count: I32) -> I32:
    """One id from each block [first, first + count)."""
    return (first + (rng.random(len(first)) * count).astype(np.int32)).astype(np.int32)


class _Blocks:
    """Per-LA id blocks as arrays, so a choice for many children in many LAs is one expression."""

    def __init__(self, plan: Plan) -> None:
        self.orgs = self._arrays([la.organisations for la in plan.las])
        self.staff_blocks = self._arrays([la.practitioners for la in plan.las])

    @staticmethod
    def _arrays(per_la: list[dict[str, Block]]) -> dict[str, tuple[I32, I32]]:
        return {
            key: (
                np.array([blocks[key].first for blocks in per_la], dtype=np.int32),
                np.array([blocks[key].count for blocks in per_la], dtype=np.int32),
            )
            for key in per_la[0]
        }

    def org(self, rng: np.random.Generator, kind: str, la: I16) -> I32:
        first, count = self.orgs[kind]
        return _pick(rng, first[la], count[la])

    def staff(self, rng: np.random.Generator, role: str, la: I16) -> I32:
        first, count = self.staff_blocks[role]
        return _pick(rng, first[la], count[la])


_BLOCKS: dict[int, tuple[Plan, _Blocks]] = {}


def _blocks(plan: Plan) -> _Blocks:
    cached = _BLOCKS.get(id(plan))
    if cached is None or cached[0] is not plan:
        cached = _BLOCKS[id(plan)] = (plan, _Blocks(plan))
    return cached[1]


class _Involvements:
    def __init__(self) -> None:
        self.parts: list[tuple[I32, I32, I32, I32, Bools, I32, Bools]] = []

    def add(
        self,
        child: I64,
        org: I32,
        started: I32,
        *,
        practitioner: I32 | None = None,
        lead: Bools | None = None,
        caf: I32 | None = None,
        sensitive: bool = False,
    ) -> None:
        n = len(child)
        self.parts.append(
            (
                child.astype(np.int32),
                org,
                practitioner if practitioner is not None else np.zeros(n, np.int32),
                started,
                lead if lead is not None else np.zeros(n, np.bool_),
                caf if caf is not None else np.full(n, -1, np.int32),
                np.full(n, sensitive, np.bool_),
            )
        )


def generate_chunk(plan: Plan, chunk: Chunk) -> ChunkData:
    """Generate every row of ``chunk`` (children, households, carers, links, involvements)."""
    options = plan.options
    rates = options.rates
    vocab = vocabulary()
    blocks = _blocks(plan)
    rng = np.random.default_rng([options.seed, 1, chunk.index])
    as_of = days(options.as_of)
    n = chunk.count

    # Households and where they live.
    if chunk.canary:
        sizes = np.ones(n, dtype=np.int32)
        household_la = np.asarray(plan.canary_las, dtype=np.int16)
    else:
        sizes = _household_sizes(rng, n) if n else np.zeros(0, np.int32)
        household_la = np.full(len(sizes), chunk.la, dtype=np.int16)
    h = len(sizes)
    household = np.repeat(np.arange(h, dtype=np.int32), sizes)
    foster = rng.random(h) < (0 if chunk.canary else rates.looked_after)
    single = ~foster & (rng.random(h) < figures.SINGLE_CARER_SHARE)
    la_children = np.array([la.children for la in plan.las], dtype=np.int64)
    streets = np.maximum(20, la_children[household_la] // 100)
    street = (rng.random(h) * streets).astype(np.int32)
    house = np.minimum(1 + rng.geometric(1 / 40, size=h), 400).astype(np.int16)
    postcode = ((street.astype(np.int64) * 4 + (house - 1) // 30) % POSTCODE_CAPACITY).astype(
        np.int32
    )
    surname_draw = (
        vocab.rare_surnames[(rng.random(h) * len(vocab.rare_surnames)).astype(np.int64)]
        if chunk.canary
        else vocab.surname_table.draw(rng, h)
    )

    # Children: ages from the births curve, siblings spaced, oldest first.
    ages, age_p = age_distribution(options.as_of)
    age = ages[rng.choice(len(ages), size=n, p=age_p)]
    order = np.lexsort((-age, household))
    age = _space_siblings(age[order], household)
    dob = (as_of - age).astype(np.int32)
    birth_year = (np.datetime64("1970-01-01") + dob.astype("timedelta64[D]")).astype(
        "datetime64[Y]"
    ).astype(np.int32) + 1970
    sex = np.where(rng.random(n) < figures.FEMALE_SHARE, FEMALE, MALE).astype(np.int8)
    cohort = vocab.cohort_of_years(birth_year)
    given = np.empty(n, dtype=np.int32)
    for c in range(len(vocab.child_cohorts)):
        for s in (FEMALE, MALE):
            mask = (cohort == c) & (sex == s)
            given[mask] = vocab.child_names[(c, s)].draw(rng, int(mask.sum()))
    # Looked-after children keep their birth family's surname, not their foster carers'.
    birth_surname = np.where(foster, vocab.surname_table.draw(rng, h), surname_draw)
    family = birth_surname[household]
    child_la = household_la[household]
    status = np.full(n, NONE, dtype=np.int8)
    status[foster[household]] = LOOKED_AFTER
    free = status == NONE
    roll = rng.random(n)
    p_cpp = rates.child_protection_plan / (1 - rates.looked_after)
    p_cin = (rates.child_in_need - rates.child_protection_plan - rates.looked_after) / (
        1 - rates.looked_after - rates.child_protection_plan
    )
    status[free & (roll < p_cpp)] = PROTECTION_PLAN
    status[free & (roll >= p_cpp) & (rng.random(n) < p_cin)] = CHILD_IN_NEED
    if chunk.canary:
        status[:] = NONE
    shielded = (rng.random(n) < rates.shielded) & (not chunk.canary)

    # Carers: one or two per household, ages plausible at the oldest child's birth.
    oldest_dob = dob[np.r_[0, np.cumsum(sizes)[:-1]]] if n else np.zeros(0, np.int32)
    two = ~single & ~(foster & (rng.random(h) < 0.2))
    first_female = ~single | (rng.random(h) < figures.SINGLE_CARER_FEMALE_SHARE)
    mean, sd = figures.MOTHER_AGE_AT_FIRST_BIRTH
    age_at_first = np.clip(rng.normal(mean, sd, h), 17, 46)
    foster_age = rng.uniform(30, 62, h)
    youngest_dob = dob[np.cumsum(sizes) - 1] if n else np.zeros(0, np.int32)
    # Old enough at the first birth, and young enough at the last (45 at most for a mother).
    birth_parent_dob = np.maximum(
        oldest_dob - age_at_first * YEAR - np.where(first_female, 0, 2.5 * YEAR),
        youngest_dob - figures.MOTHER_AGE_AT_LAST_BIRTH_MAX * YEAR,
    )
    carer1_dob = np.where(foster, as_of - foster_age * YEAR, birth_parent_dob).astype(np.int32)
    gap_mean, gap_sd = figures.PARTNER_AGE_GAP
    partner_gap = np.clip(rng.normal(gap_mean, gap_sd, h), -10, 15)
    carer2_dob = np.minimum(carer1_dob - partner_gap * YEAR, oldest_dob - 18 * YEAR).astype(
        np.int32
    )
    carer2_surname = np.where(
        rng.random(h) < 0.15, vocab.surname_table.draw(rng, h), surname_draw
    ).astype(np.int32)
    carer_household = np.concatenate([np.arange(h), np.flatnonzero(two)]).astype(np.int32)
    slot = np.concatenate([np.zeros(h, np.int8), np.ones(int(two.sum()), np.int8)])
    sort = np.lexsort((slot, carer_household))
    carer_household, slot = carer_household[sort], slot[sort]
    m = len(carer_household)
    is_second = slot == 1
    carer_sex = np.where(is_second, MALE, np.where(first_female[carer_household], FEMALE, MALE))
    carer_sex = carer_sex.astype(np.int8)
    carer_given = np.empty(m, dtype=np.int32)
    for s in (FEMALE, MALE):
        mask = carer_sex == s
        carer_given[mask] = vocab.adult_names[s].draw(rng, int(mask.sum()))
    carer_family = np.where(
        is_second, carer2_surname[carer_household], surname_draw[carer_household]
    ).astype(np.int32)
    carer_dob = np.where(
        is_second, carer2_dob[carer_household], carer1_dob[carer_household]
    ).astype(np.int32)
    phone_kind = np.where(rng.random(m) < 0.8, MOBILE, LANDLINE).astype(np.int8)
    phone = np.where(
        phone_kind == MOBILE,
        rng.integers(0, 1000, m),
        rng.integers(0, 1000 * CARER_LANDLINE_BLOCKS, m),
    ).astype(np.int32)
    email = np.where(rng.random(m) < 0.75, rng.integers(1, 100, m), -1).astype(np.int32)
    carer_base = chunk.index * CHUNK_CHILDREN * CARERS_PER_CHILD_MAX
    carer_id = (carer_base + 1 + np.arange(m)).astype(np.int64)

    # Each child is linked to every carer of its household.
    carer_start = np.r_[0, np.cumsum(np.bincount(carer_household, minlength=h))[:-1]]
    per_child = (1 + two.astype(np.int32))[household]
    link_child = np.repeat(np.arange(n, dtype=np.int32), per_child)
    within = np.arange(len(link_child)) - np.repeat(np.cumsum(per_child) - per_child, per_child)
    link_carer = (carer_start[household[link_child]] + within).astype(np.int32)
    linked_household = household[link_child]
    step = rng.random(h) < 0.1
    relationship = np.where(
        foster[linked_household],
        FOSTER_CARER,
        np.where(
            is_second[link_carer],
            np.where(step[linked_household], STEP_PARENT, FATHER),
            np.where(carer_sex[link_carer] == FEMALE, MOTHER, FATHER),
        ),
    ).astype(np.int8)
    responsibility = (relationship == MOTHER) | (relationship == FATHER)

    # Services.
    inv = _Involvements()
    everyone = np.arange(n, dtype=np.int64)
    age_years = (age / YEAR).astype(np.int32)

    def since(earliest_days: float, child: I64, latest_days: float | None = None) -> I32:
        """A start date at least ``earliest_days`` after birth (never the birth date itself)."""
        a = age[child].astype(np.float64)
        window = np.minimum(a, latest_days) if latest_days is not None else a
        lo = np.minimum(earliest_days, a)
        span = np.maximum(window - lo, 0)
        start = as_of - a + lo + rng.random(len(child)) * span
        return np.clip(np.maximum(start, as_of - a + 1), None, as_of).astype(np.int32)

    def recent(child: I64, most_days: float) -> I32:
        a = age[child].astype(np.float64)
        back = rng.random(len(child)) * np.minimum(np.maximum(a - 14, 1), most_days)
        return np.clip(as_of - back, as_of - a + 1, as_of).astype(np.int32)

    gp = blocks.org(rng, "gp_practice", household_la)[household]
    inv.add(everyone, gp, since(14, everyone))
    sept_first = _last_september_first(options.as_of)
    primary = everyone[(age_years >= 4) & (age_years <= 10)]
    inv.add(
        primary,
        blocks.org(rng, "primary_school", household_la)[household[primary]],
        _term_start(sept_first, age_years[primary] - 4),
    )
    at_secondary = (age_years >= 11) & (age_years <= 15)
    at_secondary |= (age_years >= 16) & (rng.random(n) < rates.school_16_17)
    secondary = everyone[at_secondary]
    inv.add(
        secondary,
        blocks.org(rng, "secondary_school", household_la)[household[secondary]],
        _term_start(sept_first, age_years[secondary] - 11),
    )
    nursery = everyone[
        (age_years >= 2) & (age_years <= 3) & (rng.random(n) < rates.early_years_2_3)
    ]
    inv.add(
        nursery,
        blocks.org(rng, "early_years_setting", child_la[nursery]),
        since(2 * YEAR, nursery),
    )
    under_five = everyone[age_years < 5]
    inv.add(
        under_five,
        blocks.org(rng, "health_visiting_team", household_la)[household[under_five]],
        since(10, under_five, 14),
    )
    social = everyone[status != NONE]
    inv.add(
        social,
        blocks.org(rng, "childrens_social_care", child_la[social]),
        recent(social, 3 * YEAR),
        practitioner=blocks.staff(rng, "social_care_practitioner", child_la[social]),
        lead=(status[social] != CHILD_IN_NEED) | (rng.random(len(social)) < 0.5),
    )
    protected = everyone[status == PROTECTION_PLAN]
    inv.add(
        protected,
        blocks.org(rng, "police", child_la[protected]),
        recent(protected, YEAR),
        practitioner=blocks.staff(rng, "police_practitioner", child_la[protected]),
    )
    yot = everyone[(age_years >= 10) & (rng.random(n) < rates.youth_offending_10_17)]
    inv.add(
        yot,
        blocks.org(rng, "youth_offending_team", child_la[yot]),
        recent(yot, 2 * YEAR),
        practitioner=blocks.staff(rng, "youth_offending_practitioner", child_la[yot]),
    )
    early_help = everyone[(status == NONE) & (rng.random(n) < rates.caf) & ~np.bool_(chunk.canary)]
    inv.add(
        early_help,
        blocks.org(rng, "voluntary_organisation", child_la[early_help]),
        recent(early_help, 2 * YEAR),
        practitioner=blocks.staff(rng, "voluntary_practitioner", child_la[early_help]),
        lead=rng.random(len(early_help)) < rates.lead_professional_given_caf,
        caf=recent(early_help, YEAR),
    )
    teen = (age_years >= 13) & ~np.bool_(chunk.canary)
    for kind in SENSITIVE:
        who = everyone[teen & (rng.random(n) < rates.sensitive_13_17[kind])]
        inv.add(
            who,
            blocks.org(rng, kind, child_la[who]),
            recent(who, YEAR),
            sensitive=True,
        )

    # Involvements, carers and links in no particular order, numbered after the shuffle: rows
    # (and ids) in the children's order would let a copy of the database line a sealed child
    # reference up with the child it hides. Drawn last, so every other value stays as it was.
    columns = [np.concatenate(col) for col in zip(*inv.parts, strict=True)]
    inv_order = rng.permutation(len(columns[0]))
    inv_child, inv_org, inv_staff, inv_started, inv_lead, inv_caf, inv_sensitive = (
        c[inv_order] for c in columns
    )
    involvement_base = chunk.index * CHUNK_CHILDREN * INVOLVEMENTS_PER_CHILD_MAX
    involvement_id = (involvement_base + 1 + np.arange(len(inv_child))).astype(np.int64)
    carer_order = rng.permutation(m)
    carer_household, carer_given, carer_family, carer_dob, phone, email = (
        a[carer_order]
        for a in (carer_household, carer_given, carer_family, carer_dob, phone, email)
    )
    carer_sex, phone_kind = carer_sex[carer_order], phone_kind[carer_order]
    carer_position = np.empty(m, np.int32)
    carer_position[carer_order] = np.arange(m, dtype=np.int32)
    link_order = rng.permutation(len(link_child))
    link_child = link_child[link_order]
    link_carer = carer_position[link_carer[link_order]]
    relationship, responsibility = relationship[link_order], responsibility[link_order]

    positions = chunk.index * CHUNK_CHILDREN + np.arange(n, dtype=np.int64)
    sample = np.zeros(0, dtype=np.int64)
    if chunk.first == 0 and not chunk.canary and n and options.sample_per_la:
        k = min(options.sample_per_la, n)
        sample = np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))
    return ChunkData(
        chunk=chunk,
        child_number=permute(positions, options.seed),
        child_la=child_la.astype(np.int16),
        child_sex=sex,
        child_given=given,
        child_family=family.astype(np.int32),
        child_dob=dob,
        child_household=household,
        child_shielded=shielded,
        child_status=status,
        household_la=household_la,
        household_house=house,
        household_street=street,
        household_postcode=postcode,
        carer_id=carer_id,
        carer_household=carer_household,
        carer_sex=carer_sex,
        carer_given=carer_given,
        carer_family=carer_family,
        carer_dob=carer_dob,
        carer_phone_kind=phone_kind,
        carer_phone=phone,
        carer_email=email,
        link_child=link_child,
        link_carer=link_carer,
        link_relationship=relationship,
        link_responsibility=responsibility,
        involvement_id=involvement_id,
        involvement_child=inv_child.astype(np.int32),
        involvement_org=inv_org.astype(np.int32),
        involvement_practitioner=inv_staff.astype(np.int32),
        involvement_started=inv_started.astype(np.int32),
        involvement_lead=inv_lead.astype(np.bool_),
        involvement_caf=inv_caf.astype(np.int32),
        involvement_sensitive=inv_sensitive.astype(np.bool_),
        sample=sample,
    )


def _last_september_first(as_of: date) -> date:
    year = as_of.year if (as_of.month, as_of.day) >= (9, 1) else as_of.year - 1
    return date(year, 9, 1)


def _term_start(sept_first: date, years_in_phase: I32) -> I32:
    """The 1 September on which a child started the phase ``years_in_phase`` years ago."""
    table = np.array([days(date(sept_first.year - k, 9, 1)) for k in range(0, 20)], dtype=np.int32)
    return table[np.clip(years_in_phase, 0, 19)]
