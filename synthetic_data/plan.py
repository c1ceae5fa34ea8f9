"""The plan of a population: how many children each LA gets, the chunks, and every id range.

A plan is a pure function of the run's parameters (seed, size, date, rates). Each chunk's content
is a pure function of the plan and the chunk's index, so any worker, shard or machine that
generates chunk 17 produces the same rows, and ids never collide: organisations and
practitioners get contiguous ranges per LA, carers and involvements a fixed stride per chunk,
and children a keyed permutation of their position (see `ids`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np

from reference_app.localauthorities.catalogue import load_catalogue
from synthetic_data import figures

FORMAT_VERSION = 1
CHUNK_CHILDREN = 50_000
CARERS_PER_CHILD_MAX = 2  # a household has at most two carers and at least one child
INVOLVEMENTS_PER_CHILD_MAX = 10
MAX_CHILDREN = figures.MAX_CHILDREN
PILOT_LA = "E10000017"  # Lancashire: the north-west pilot (DOMAIN.md)

# Organisations every LA has exactly one of.
SINGLE_ORGANISATIONS = (
    "youth_offending_team",
    "police",
    "sexual_health_service",
    "mental_health_service",
    "substance_misuse_service",
    "la_management_team",
)
NATIONAL_ORGANISATIONS = ("national_audit", "registry_operations")
# Layout names that are not themselves organisation kinds.
ORGANISATION_KIND = {"primary_school": "school", "secondary_school": "school"}
LA_ROLES = tuple(figures.PRACTITIONER_ROLE_SHARES)
# Every LA has at least two data managers, and an LA with personas gives two of them
# credentials: unshielding and reinstatement are two people's decisions.
DATA_MANAGER_PERSONAS = 2
LA_DATA_MANAGER = "la_data_manager"
NATIONAL_ROLES = {
    "national_auditor": (figures.NATIONAL_AUDITORS, "national_audit"),
    "system_administrator": (figures.SYSTEM_ADMINISTRATORS, "registry_operations"),
}


@dataclass(frozen=True)
class Block:
    """A contiguous id range: ids first .. first + count - 1."""

    first: int
    count: int

    def ids(self) -> range:
        return range(self.first, self.first + self.count)


@dataclass(frozen=True)
class LaLayout:
    index: int
    code: str
    name: str
    region: str
    children: int
    organisations: dict[str, Block]
    practitioners: dict[str, Block]


@dataclass(frozen=True)
class Chunk:
    """A unit of generation and loading: up to CHUNK_CHILDREN children of one LA."""

    index: int
    la: int
    first: int  # position of the chunk's first child within its LA
    count: int
    canary: bool = False

    @property
    def carrier(self) -> bool:
        """Whether this chunk also carries its LA's organisations and practitioners."""
        return self.first == 0 and not self.canary


@dataclass(frozen=True)
class Persona:
    role: str
    la: int
    practitioner_id: int


@dataclass(frozen=True)
class Options:
    """The parameters a population is a pure function of."""

    seed: int = 2009
    children: int = figures.NATIONAL_CHILDREN
    as_of: date = figures.DEFAULT_AS_OF
    canaries: int = 24
    sample_per_la: int = 100
    personas_per_role: int = 8
    rates: figures.Rates = field(default_factory=figures.Rates)

    def fingerprint(self) -> str:
        """A short stable digest of everything that shapes the output."""
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["format"] = FORMAT_VERSION
        data["chunk_children"] = CHUNK_CHILDREN
        raw = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    options: Options
    las: tuple[LaLayout, ...]
    national_organisations: dict[str, Block]
    national_practitioners: dict[str, Block]
    chunks: tuple[Chunk, ...]
    personas: tuple[Persona, ...]
    canary_las: tuple[int, ...]
    pilot: int

    @property
    def organisation_count(self) -> int:
        return sum(b.count for b in self.national_organisations.values()) + sum(
            b.count for la in self.las for b in la.organisations.values()
        )

    @property
    def practitioner_count(self) -> int:
        return sum(b.count for b in self.national_practitioners.values()) + sum(
            b.count for la in self.las for b in la.practitioners.values()
        )

    def shard(self, index: int, of: int) -> tuple[Chunk, ...]:
        """The chunks shard ``index`` of ``of`` generates (round robin by chunk index)."""
        if not 0 <= index < of:
            raise ValueError(f"shard {index}/{of} does not exist (shards count from 0)")
        return tuple(c for c in self.chunks if c.index % of == index)


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` by largest remainders (exact, deterministic)."""
    w = np.asarray(weights, dtype=np.float64)
    quotas = total * w / w.sum()
    base = np.floor(quotas).astype(np.int64)
    short = total - int(base.sum())
    order = np.lexsort((np.arange(len(w)), -(quotas - base)))
    base[order[:short]] += 1
    return [int(x) for x in base]


def _scaled(children: int, per_nation: int) -> int:
    return max(1, round(children * per_nation / figures.NATIONAL_CHILDREN))


def build_plan(options: Options) -> Plan:
    """Lay out a population: LA sizes, organisations, practitioners, chunks, personas, canaries."""
    if not 1 <= options.children <= MAX_CHILDREN:
        raise ValueError(f"children must be between 1 and {MAX_CHILDREN:,}")
    if not 0 <= options.canaries < options.children:
        raise ValueError("canaries must be fewer than the children")
    catalogue = load_catalogue()
    regular = options.children - options.canaries
    sizes = apportion(regular, [la.children_0_17 for la in catalogue])
    rng = np.random.default_rng([options.seed, 0xC0DE])

    next_org = 1
    next_practitioner = 1
    layouts: list[LaLayout] = []
    for index, (info, size) in enumerate(zip(catalogue, sizes, strict=True)):
        orgs: dict[str, Block] = {}
        for kind, per_nation in figures.ORGANISATIONS_PER_NATION.items():
            orgs[kind] = Block(next_org, _scaled(size, per_nation))
            next_org += orgs[kind].count
        for kind in SINGLE_ORGANISATIONS:
            orgs[kind] = Block(next_org, 1)
            next_org += 1
        staff = apportion(
            max(len(LA_ROLES), _scaled(size, figures.NATIONAL_PRACTITIONERS)),
            [round(share * 1000) for share in figures.PRACTITIONER_ROLE_SHARES.values()],
        )
        practitioners: dict[str, Block] = {}
        for role, count in zip(LA_ROLES, staff, strict=True):
            least = DATA_MANAGER_PERSONAS if role == "la_data_manager" else 1
            practitioners[role] = Block(next_practitioner, max(least, count))
            next_practitioner += practitioners[role].count
        layouts.append(
            LaLayout(index, info.ons_code, info.name, info.region, size, orgs, practitioners)
        )

    national_orgs = {}
    for kind in NATIONAL_ORGANISATIONS:
        national_orgs[kind] = Block(next_org, 1)
        next_org += 1
    national_staff = {}
    for role, (count, _) in NATIONAL_ROLES.items():
        national_staff[role] = Block(next_practitioner, count)
        next_practitioner += count

    chunks: list[Chunk] = []
    for layout in layouts:
        for first in range(0, max(layout.children, 1), CHUNK_CHILDREN):
            count = min(CHUNK_CHILDREN, layout.children - first)
            chunks.append(Chunk(len(chunks), layout.index, first, max(count, 0)))
    weights = np.asarray(sizes, dtype=np.float64)
    canary_las: tuple[int, ...] = ()
    if options.canaries:
        canary_las = tuple(
            int(x)
            for x in np.sort(
                rng.choice(len(layouts), size=options.canaries, p=weights / weights.sum())
            )
        )
        chunks.append(Chunk(len(chunks), -1, 0, options.canaries, canary=True))

    pilot = next((la.index for la in layouts if la.code == PILOT_LA), 0)
    personas: list[Persona] = []
    others = [la.index for la in layouts if la.index != pilot]
    other_weights = weights[others] / weights[others].sum()
    for role in LA_ROLES:
        extra = min(options.personas_per_role - 1, len(others)) if options.personas_per_role else 0
        picked = rng.choice(others, size=max(extra, 0), replace=False, p=other_weights)
        chosen = ([pilot] if options.personas_per_role else []) + sorted(int(x) for x in picked)
        # The LA's first data manager stays its first persona, for lookups by role.
        take = DATA_MANAGER_PERSONAS if role == "la_data_manager" else 1
        for la in chosen:
            for practitioner_id in list(layouts[la].practitioners[role].ids())[:take]:
                personas.append(Persona(role, la, practitioner_id))
    # Every authority with personas has data manager personas: an account the harness makes
    # there in a child-data role waits for one of that authority to confirm it.
    managed = {p.la for p in personas if p.role == LA_DATA_MANAGER}
    for la in sorted({p.la for p in personas} - managed):
        for practitioner_id in list(layouts[la].practitioners[LA_DATA_MANAGER].ids())[
            :DATA_MANAGER_PERSONAS
        ]:
            personas.append(Persona(LA_DATA_MANAGER, la, practitioner_id))
    for role, block in national_staff.items():
        for practitioner_id in list(block.ids())[: options.personas_per_role]:
            personas.append(Persona(role, pilot, practitioner_id))
    return Plan(
        options=options,
        las=tuple(layouts),
        national_organisations=national_orgs,
        national_practitioners=national_staff,
        chunks=tuple(chunks),
        personas=tuple(personas),
        canary_las=canary_las,
        pilot=pilot,
    )
