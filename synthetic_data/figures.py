"""National figures the population is shaped by, each with its source or stated approximation.

Everything here is a default: the generator reads these values, tests check the output against
them, and `Rates` can be overridden per run. Figures are for England unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# Live births in England and Wales by calendar year (ONS, "Births in England and Wales" annual
# releases, rounded to the nearest 100). Only the shape matters: each year's share of the 0-17
# population follows its births. 2025 and 2026 are not published at the time of writing and are
# assumed flat at about 590,000. Deaths and migration after birth are ignored (a few per cent).
BIRTHS_BY_YEAR: dict[int, int] = {
    2006: 669_600,
    2007: 690_000,
    2008: 708_700,
    2009: 706_200,
    2010: 723_200,
    2011: 723_900,
    2012: 729_700,
    2013: 698_500,
    2014: 695_200,
    2015: 697_900,
    2016: 696_300,
    2017: 679_100,
    2018: 657_100,
    2019: 640_400,
    2020: 613_900,
    2021: 624_800,
    2022: 605_500,
    2023: 591_100,
    2024: 594_700,
    2025: 590_000,
    2026: 590_000,
}

# The date the population describes: ages and school phases are taken on this day. A fixed default
# keeps output byte-identical from one year to the next; `--as-of` moves it.
DEFAULT_AS_OF = date(2026, 9, 1)

# The largest population a run accepts: every id stays below 2**31 (PostgreSQL integer columns).
MAX_CHILDREN = 150_000_000

# About 11 million children under 18 in England (DOMAIN.md; ONS mid-year estimates give 11.4 to
# 12 million over 2008-2024).
NATIONAL_CHILDREN = 11_000_000

# Households (ONS Families and Households, families with dependent children): about 44 % have one
# child, 40 % two, 12 % three, 3 % four and 1 % five or more. Weights are per family.
CHILDREN_PER_FAMILY: dict[int, float] = {1: 0.44, 2: 0.40, 3: 0.12, 4: 0.03, 5: 0.01}
# Lone-parent families hold about a quarter of dependent children (ONS, ~23-25 %); most are mothers.
SINGLE_CARER_SHARE = 0.25
SINGLE_CARER_FEMALE_SHARE = 0.90
# Mean age of mothers at first birth is about 29-31 (ONS births by parents' characteristics);
# fathers are on average about 2.5 years older. Ages are clipped to 17-46 at the first birth.
MOTHER_AGE_AT_FIRST_BIRTH = (29.5, 5.5)
PARTNER_AGE_GAP = (2.5, 3.5)  # clipped to -10 .. +15 years
# Births to mothers over 45 are a fraction of a per cent (ONS): a mother is at most 45 at her
# youngest child's birth here.
MOTHER_AGE_AT_LAST_BIRTH_MAX = 45
# Siblings are at least ten months apart; a sibling who would be born later than that is a twin.
MIN_SIBLING_GAP_DAYS = 300
# Sex ratio at birth: about 105 boys to 100 girls.
FEMALE_SHARE = 100 / 205

# Organisations per 11 million children, spread over LAs in proportion to their children.
# GP practices: about 6,300 in England (NHS Digital, 2024). Schools: about 24,000 state and
# independent schools (DfE "Schools, pupils and their characteristics"), split here as 18,000
# primary-phase and 6,000 secondary-phase (special and all-through schools folded into those).
# The rest are round working figures, not published counts: group early-years settings,
# health-visiting teams, social-care area teams and voluntary organisations.
ORGANISATIONS_PER_NATION: dict[str, int] = {
    "gp_practice": 6_300,
    "primary_school": 18_000,
    "secondary_school": 6_000,
    "early_years_setting": 15_000,
    "health_visiting_team": 300,
    "childrens_social_care": 600,
    "voluntary_organisation": 2_000,
}

# About 390,000 users by November 2008 for 11 million children (DOMAIN.md).
NATIONAL_PRACTITIONERS = 390_000
# The mix of users by role is a working assumption (schools and health were the largest user
# groups in the 2008-2009 rollout); data managers are the LA management teams.
PRACTITIONER_ROLE_SHARES: dict[str, float] = {
    "education_practitioner": 0.36,
    "health_practitioner": 0.26,
    "social_care_practitioner": 0.18,
    "voluntary_practitioner": 0.085,
    "police_practitioner": 0.07,
    "youth_offending_practitioner": 0.04,
    "la_data_manager": 0.005,
}
NATIONAL_AUDITORS = 20
SYSTEM_ADMINISTRATORS = 10


@dataclass(frozen=True)
class Rates:
    """Shares of children with each kind of service (the issue's figures, overridable per run)."""

    # DfE "Characteristics of children in need": about 400,000 children in need at any time, of
    # whom about 50,000 are on a child-protection plan and 80,000 looked after (DOMAIN.md); the
    # child-protection and looked-after children are counted inside the children in need.
    child_in_need: float = 0.033
    child_protection_plan: float = 0.004
    looked_after: float = 0.007
    # A youth offending team works with a small share of 10-17 year olds (working figure).
    youth_offending_10_17: float = 0.008
    # Early help: a CAF assessment for a share of children, and a lead professional for a share of
    # those; configurable because take-up varied widely between LAs.
    caf: float = 0.02
    lead_professional_given_caf: float = 0.6
    # Funded early education: most 3 year olds and some 2 year olds attend a setting.
    early_years_2_3: float = 0.6
    # 16-17 year olds in school sixth forms (the rest are in colleges, training or work).
    school_16_17: float = 0.6
    # Consented sensitive-service contacts among 13-17 year olds (working figures).
    sensitive_13_17: dict[str, float] = field(
        default_factory=lambda: {
            "sexual_health_service": 0.02,
            "mental_health_service": 0.015,
            "substance_misuse_service": 0.004,
        }
    )
    # Shielded records were expected to be under 0.5 % (DOMAIN.md).
    shielded: float = 0.005


def births_share_by_year() -> dict[int, float]:
    """Each year's births as a share of the table's total."""
    total = sum(BIRTHS_BY_YEAR.values())
    return {year: births / total for year, births in BIRTHS_BY_YEAR.items()}
