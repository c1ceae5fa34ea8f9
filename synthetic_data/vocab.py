"""The vocabularies the generator samples from, as arrays: Faker's en_GB lists plus our additions.

Strings live once in a vocabulary; the generator draws integer indices with NumPy and only the
output stage turns them back into text. Sampling weights:
- children's first names: 55 % from the birth cohort's list on a smooth rank curve
  (weight 1 / (rank + 10), which gives the top name about 2 %), 35 % from all cohorts' lists
  evenly, 10 % from Faker's adult lists (the long tail of older and rarer names);
- adults' first names: Faker's en_GB lists, evenly (Faker gives them no weights);
- surnames: Faker's en_GB weights plus `names.EXTRA_SURNAMES`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from faker.providers.address.en_GB import Provider as AddressProvider
from faker.providers.person.en_GB import Provider as PersonProvider

from reference_app.kit import names
from reference_app.localauthorities.catalogue import load_catalogue
from synthetic_data.organisations import ORGANISATION_TEMPLATES, PLACE_WORDS

FEMALE, MALE = 0, 1
SEXES = ("female", "male")

Indices = npt.NDArray[np.int32]
Weights = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Table:
    """Indices into a vocabulary with the probability of drawing each."""

    indices: Indices
    p: Weights

    def draw(self, rng: np.random.Generator, size: int) -> Indices:
        return self.indices[rng.choice(len(self.indices), size=size, p=self.p)]


@dataclass(frozen=True)
class Vocabulary:
    first_names: tuple[str, ...]
    surnames: tuple[str, ...]
    street_suffixes: tuple[str, ...]
    child_cohorts: tuple[tuple[int, int], ...]
    # (cohort index, sex) -> table of first names
    child_names: dict[tuple[int, int], Table]
    adult_names: dict[int, Table]
    surname_table: Table
    # Surnames weighted least, for canaries: plausible, and rarely hit by a legitimate search.
    rare_surnames: Indices
    place_words: tuple[str, ...]

    def cohort_of_years(self, years: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """The index of the name cohort each birth year belongs to."""
        starts = np.array([start for start, _ in self.child_cohorts], dtype=np.int32)
        return (np.searchsorted(starts, years, side="right") - 1).clip(0).astype(np.int32)


def _table(indices: list[int], weights: list[float]) -> Table:
    w = np.asarray(weights, dtype=np.float64)
    return Table(np.asarray(indices, dtype=np.int32), w / w.sum())


def clear_text_words() -> frozenset[str]:
    """Words of reference data stored in clear (LA names, organisation templates), folded."""
    text = " ".join(la.name for la in load_catalogue())
    text += " " + " ".join(t for ts in ORGANISATION_TEMPLATES.values() for t in ts)
    return frozenset(w.casefold() for w in re.findall(r"[A-Za-z]+", text))


def _kept(words: list[str], reserved: frozenset[str]) -> list[str]:
    return [w for w in words if w.casefold() not in reserved]


@functools.cache
def vocabulary() -> Vocabulary:
    """Build the vocabulary once per process (deterministic: no randomness here)."""
    reserved = clear_text_words()
    adult = {
        FEMALE: _kept(names.words(" ".join(PersonProvider.first_names_female)), reserved),
        MALE: _kept(names.words(" ".join(PersonProvider.first_names_male)), reserved),
    }
    cohorts = tuple(sorted(names.COHORT_FIRST_NAMES))
    cohort_lists = {
        (c, sex): _kept(names.words(names.COHORT_FIRST_NAMES[cohort][SEXES[sex]]), reserved)
        for c, cohort in enumerate(cohorts)
        for sex in (FEMALE, MALE)
    }
    first: dict[str, int] = {}
    for name_list in [*cohort_lists.values(), adult[FEMALE], adult[MALE]]:
        for name in name_list:
            first.setdefault(name, len(first))

    child_names: dict[tuple[int, int], Table] = {}
    for (c, sex), ranked in cohort_lists.items():
        pool = names.words(" ".join(" ".join(cohort_lists[(k, sex)]) for k in range(len(cohorts))))
        weight: dict[int, float] = {}
        rank_total = sum(1 / (r + 10) for r in range(1, len(ranked) + 1))
        for r, name in enumerate(ranked, start=1):
            weight[first[name]] = weight.get(first[name], 0.0) + 0.55 / (r + 10) / rank_total
        for name in pool:
            weight[first[name]] = weight.get(first[name], 0.0) + 0.35 / len(pool)
        for name in adult[sex]:
            weight[first[name]] = weight.get(first[name], 0.0) + 0.10 / len(adult[sex])
        keys = sorted(weight)
        child_names[(c, sex)] = _table(keys, [weight[k] for k in keys])
    adult_names = {
        sex: _table([first[n] for n in adult[sex]], [1.0] * len(adult[sex])) for sex in (0, 1)
    }

    surname_weights: dict[str, float] = dict(PersonProvider.last_names)
    for name, w in names.EXTRA_SURNAMES.items():
        surname_weights.setdefault(name, w)
    surnames = tuple(sorted(_kept(list(surname_weights), reserved)))
    surname_table = _table(list(range(len(surnames))), [surname_weights[s] for s in surnames])
    every_name = set(first) | set(surnames)
    by_weight = np.argsort(surname_table.p, kind="stable")
    suffixes = tuple(
        s for s in AddressProvider.street_suffixes if s in names.BRITISH_STREET_SUFFIXES
    )
    return Vocabulary(
        first_names=tuple(first),
        surnames=surnames,
        street_suffixes=tuple(sorted(set(suffixes))),
        child_cohorts=cohorts,
        child_names=child_names,
        adult_names=adult_names,
        surname_table=surname_table,
        rare_surnames=by_weight[:60].astype(np.int32),
        place_words=tuple(_kept(PLACE_WORDS, frozenset(n.casefold() for n in every_name))),
    )
