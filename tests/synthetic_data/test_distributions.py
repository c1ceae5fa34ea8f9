"""The population's shape against the stated figures, on 150,000 children over all 152 LAs.

Tolerances are stated per check; they are sampling tolerances around the configured figures,
several standard errors wide at this sample size, so a failure means the generator drifted.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reference_app.kit.names import COHORT_FIRST_NAMES, words
from reference_app.localauthorities.catalogue import REGIONS, load_catalogue
from synthetic_data import figures
from synthetic_data.plan import Options, apportion, build_plan
from synthetic_data.population import (
    CHILD_IN_NEED,
    LOOKED_AFTER,
    NONE,
    PROTECTION_PLAN,
    YEAR,
    age_distribution,
    days,
)
from synthetic_data.vocab import vocabulary
from tests.fixtures.population import SAMPLE_CHILDREN, Population


def ages_in_days(population: Population) -> np.ndarray:
    return days(population.plan.options.as_of) - population.cat("child_dob")


def test_the_sample_is_big_enough_and_every_child_is_0_to_17(population: Population) -> None:
    age = ages_in_days(population)
    assert len(age) == SAMPLE_CHILDREN >= 100_000
    assert age.min() >= 0
    assert (age / YEAR).max() < 18


def test_single_years_of_age_follow_the_births_curve(population: Population) -> None:
    # Each single year of age within 8 % (relative) of its share of births; siblings spacing
    # moves a little weight from older to younger years, which this allows for.
    age_years = (ages_in_days(population) / YEAR).astype(int)
    observed = np.bincount(age_years, minlength=18) / len(age_years)
    ages, p = age_distribution(population.plan.options.as_of)
    expected = np.bincount((ages / YEAR).astype(int), weights=p, minlength=18)
    assert np.all(np.abs(observed / expected - 1) < 0.08), np.round(observed / expected, 3)


def test_children_are_spread_over_las_and_regions_in_proportion(population: Population) -> None:
    catalogue = load_catalogue()
    codes = [la.code for la in population.plan.las]
    per_la = np.bincount(population.cat("child_la"), minlength=len(codes))
    canaries = population.plan.options.canaries
    # Exact: LA sizes are a largest-remainder split of the catalogue's 0-17 populations.
    regular = per_la - np.bincount(population.plan.canary_las, minlength=len(codes))
    assert list(regular) == apportion(
        SAMPLE_CHILDREN - canaries, [la.children_0_17 for la in catalogue]
    )
    region_of = {la.ons_code: la.region for la in catalogue}
    total = sum(la.children_0_17 for la in catalogue)
    for region in REGIONS:
        expected = sum(la.children_0_17 for la in catalogue if la.region == region) / total
        observed = sum(
            n for code, n in zip(codes, per_la, strict=True) if region_of[code] == region
        )
        assert abs(observed / SAMPLE_CHILDREN - expected) < 0.002, region


def test_household_sizes_and_single_carers(population: Population) -> None:
    sizes: Counter[int] = Counter()
    single_children = children = 0
    for data in population.chunks:
        if data.chunk.canary:
            continue
        per_household = np.bincount(data.child_household)
        sizes.update(per_household.tolist())
        carers = np.bincount(data.carer_household, minlength=len(per_household))
        single_children += int(per_household[carers == 1].sum())
        children += int(per_household.sum())
    households = sum(sizes.values())
    for size, share in figures.CHILDREN_PER_FAMILY.items():
        # The last household of each chunk is cut to fit: a few hundred of 80,000 households.
        assert abs(sizes[size] / households - share) < 0.01, (size, sizes[size] / households)
    # About a quarter of children live with one carer (foster households included).
    assert abs(single_children / children - figures.SINGLE_CARER_SHARE) < 0.01


def test_siblings_share_carers_and_address(population: Population) -> None:
    for data, tables in zip(population.chunks[:20], population.tables[:20], strict=True):
        line1 = tables.children["address_line1"].to_pylist()
        postcode = tables.children["postcode"].to_pylist()
        household = data.child_household.tolist()
        for i in range(1, len(household)):
            if household[i] == household[i - 1]:
                assert (line1[i], postcode[i]) == (line1[i - 1], postcode[i - 1])
        links = {}
        for child, carer in zip(data.link_child.tolist(), data.link_carer.tolist(), strict=True):
            links.setdefault(child, set()).add(carer)
        for i in range(1, len(household)):
            if household[i] == household[i - 1]:
                assert links[i] == links[i - 1]


def test_carers_ages_are_plausible_at_each_childs_birth(population: Population) -> None:
    gaps = []
    for data in population.chunks:
        child_of_link = data.link_child
        dob_child = data.child_dob[child_of_link]
        dob_carer = data.carer_dob[data.link_carer]
        parents = data.link_relationship[:] != 3  # foster carers are judged at placement
        gaps.append(((dob_child - dob_carer) / YEAR)[parents])
    age_at_birth = np.concatenate(gaps)
    # Birth parents and step-parents 16 to 65 at the birth; nearly all 17 to 50.
    assert age_at_birth.min() >= 16
    assert age_at_birth.max() <= 65
    assert np.mean((age_at_birth >= 17) & (age_at_birth <= 50)) > 0.98
    assert 28 <= np.median(age_at_birth) <= 36


def test_service_rates_match_the_figures(population: Population) -> None:
    rates = population.plan.options.rates
    status = population.cat("child_status")
    n = len(status)
    cin = np.mean(status != NONE)
    cpp = np.mean(status == PROTECTION_PLAN)
    lac = np.mean(status == LOOKED_AFTER)
    assert abs(cin - rates.child_in_need) < 0.003, cin
    assert abs(cpp - rates.child_protection_plan) < 0.001, cpp
    assert abs(lac - rates.looked_after) < 0.0015, lac
    assert np.mean(status == CHILD_IN_NEED) > 0
    shielded = population.cat("child_shielded")
    assert abs(shielded.mean() - rates.shielded) < 0.001
    assert n == SAMPLE_CHILDREN


def _kinds_by_org(population: Population) -> dict[int, tuple[str, int]]:
    kinds = {}
    for la in population.plan.las:
        for kind, block in la.organisations.items():
            for org in block.ids():
                kinds[org] = (kind, la.index)
    return kinds


def test_every_child_has_the_universal_services_of_their_age_in_their_la(
    population: Population,
) -> None:
    kinds = _kinds_by_org(population)
    for data in population.chunks[::5]:
        age = (days(population.plan.options.as_of) - data.child_dob) / YEAR
        held: dict[int, set[str]] = {}
        for child, org in zip(
            data.involvement_child.tolist(), data.involvement_org.tolist(), strict=True
        ):
            kind, la = kinds[org]
            assert la == data.child_la[child]  # services of the child's own LA
            held.setdefault(child, set()).add(kind)
        for child in range(data.children):
            years = int(age[child])
            services = held.get(child, set())
            assert "gp_practice" in services
            if 4 <= years <= 10:
                assert "primary_school" in services
            if 11 <= years <= 15:
                assert "secondary_school" in services
            if years < 5:
                assert "health_visiting_team" in services
            assert not ({"primary_school", "secondary_school"} <= services)


def test_social_care_youth_offending_caf_and_sensitive_rates(population: Population) -> None:
    kinds = _kinds_by_org(population)
    rates = population.plan.options.rates
    counts: Counter[str] = Counter()
    caf = lead = teens = tweens = 0
    sensitive_consented = True
    for data in population.chunks:
        age = (days(population.plan.options.as_of) - data.child_dob) / YEAR
        teens += int(np.sum(age >= 13))
        tweens += int(np.sum(age >= 10))
        kind = [kinds[o][0] for o in data.involvement_org.tolist()]
        counts.update(kind)
        caf += int(np.sum(data.involvement_caf >= 0))
        lead += int(np.sum(data.involvement_lead & (data.involvement_caf >= 0)))
        sensitive_consented &= bool(
            np.all(
                data.involvement_sensitive
                == np.isin(
                    kind,
                    [
                        "sexual_health_service",
                        "mental_health_service",
                        "substance_misuse_service",
                    ],
                )
            )
        )
    n = SAMPLE_CHILDREN
    assert counts["childrens_social_care"] / n == pytest.approx(rates.child_in_need, abs=0.003)
    assert counts["youth_offending_team"] / tweens == pytest.approx(
        rates.youth_offending_10_17, abs=0.002
    )
    assert caf / n == pytest.approx(rates.caf * (1 - rates.child_in_need), abs=0.002)
    assert lead / caf == pytest.approx(rates.lead_professional_given_caf, abs=0.05)
    for kind, rate in rates.sensitive_13_17.items():
        assert counts[kind] / teens == pytest.approx(rate, abs=max(0.3 * rate, 0.001)), kind
    assert sensitive_consented


def test_first_names_belong_to_the_childrens_birth_cohort(population: Population) -> None:
    children = population.children()
    born = np.array([d.year for d in children["date_of_birth"].to_pylist()])
    given = np.array(children["given_name"].to_pylist())
    # By design (synthetic_data/vocab.py) 55 % come from the cohort's own list and 35 % from
    # all the children's lists, many of which the cohort's list shares: about four in five
    # carry a name of their cohort. Faker's adult favourites stay rare.
    for cohort, (first, last) in ((2019, (2019, 2030)), (2008, (2000, 2012))):
        names = {
            n for sex in ("female", "male") for n in words(COHORT_FIRST_NAMES[(first, last)][sex])
        }
        in_cohort = given[(born >= max(first, 2008)) & (born <= last)]
        assert np.isin(in_cohort, list(names)).mean() > 0.75, cohort
    recent = given[born >= 2019]
    assert np.isin(recent, ["Susan", "Linda", "Julie", "Gary", "Keith"]).mean() < 0.01


def test_surnames_are_weighted_not_uniform(population: Population) -> None:
    family = Counter(population.children()["family_name"].to_pylist())
    total = sum(family.values())
    top = family.most_common(10)
    assert top[0][1] / total > 0.01  # the commonest surname, about 1 in 40
    assert len(family) > 400
    least = min(family.values())
    assert top[0][1] > 50 * least


def test_national_plan_has_the_stated_organisation_and_user_counts() -> None:
    plan = build_plan(Options())
    counts: Counter[str] = Counter()
    for la in plan.las:
        for kind, block in la.organisations.items():
            counts[kind] += block.count
    assert counts["gp_practice"] == pytest.approx(6_300, rel=0.05)
    assert counts["primary_school"] + counts["secondary_school"] == pytest.approx(24_000, rel=0.05)
    assert plan.practitioner_count == pytest.approx(390_000, rel=0.02)
    assert sum(c.count for c in plan.chunks) == figures.NATIONAL_CHILDREN
    roles: Counter[str] = Counter()
    for la in plan.las:
        for role, block in la.practitioners.items():
            roles[role] += block.count
    for role, share in figures.PRACTITIONER_ROLE_SHARES.items():
        assert roles[role] / sum(roles.values()) == pytest.approx(share, abs=0.01), role


def test_vocabulary_keeps_personal_names_out_of_clear_text_reference_data() -> None:
    from synthetic_data.vocab import clear_text_words

    vocab = vocabulary()
    reserved = clear_text_words()
    assert not {n.casefold() for n in vocab.first_names + vocab.surnames} & reserved
    names = {n.casefold() for n in vocab.first_names + vocab.surnames}
    assert not {w.casefold() for w in vocab.place_words} & names
