"""The demographic attributes synthetic identities are generated for, and the quota sampler that balances them.

These are the *intended* attributes of synthetic faces (what the generator aimed for), not measurements of people.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rng import stream

# (label, lowest age, highest age) in years; the elderly are well represented because the people automated pain
# assessment serves most (dementia, intensive care) are often old.
AGE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("20-34", 20, 34),
    ("35-49", 35, 49),
    ("50-64", 50, 64),
    ("65-79", 65, 79),
    ("80-90", 80, 90),
)
AGE_GROUP_NAMES: tuple[str, ...] = tuple(name for name, _, _ in AGE_GROUPS)
GENDERS: tuple[str, ...] = ("female", "male")
ETHNICITIES: tuple[str, ...] = ("Black", "East Asian", "Hispanic/Latino", "Middle Eastern", "South Asian", "White")
CELLS_PER_BLOCK = len(AGE_GROUPS) * len(GENDERS) * len(ETHNICITIES)  # 60: one identity per cell per block


@dataclass(frozen=True)
class Demographics:
    age_group: str
    gender: str
    ethnicity: str
    age: int


def identity_demographics(seed: int, index: int) -> Demographics:
    """Demographics of identity `index`, from (seed, index) alone.

    Identities are dealt in blocks of one full cross product of groups (60 cells). Inside a block, position k takes
    age group k mod 5, ethnicity k mod 6 and gender (k + k // 6) mod 2, each through a seeded relabelling of the
    block: the 60 positions are 60 distinct cells, and every prefix of the dataset has every marginal (age group,
    gender, ethnicity) within one of even. The age is uniform inside the group.
    """
    age_group, gender, ethnicity = demographic_cell(seed, index)
    _, low, high = AGE_GROUPS[AGE_GROUP_NAMES.index(age_group)]
    age = int(stream("age", seed, index).integers(low, high + 1))
    return Demographics(age_group, gender, ethnicity, age)


def demographic_cell(seed: int, index: int) -> tuple[str, str, str]:
    """(age group, gender, ethnicity) of identity `index` (see `identity_demographics`), without drawing its age."""
    if index < 0:
        raise ValueError(f"identity index must be >= 0, got {index}")
    block, k = divmod(index, CELLS_PER_BLOCK)
    rng = stream("demographic_cells", seed, block)
    age_order, gender_order, ethnicity_order = (rng.permutation(n) for n in (len(AGE_GROUPS), 2, len(ETHNICITIES)))
    return (
        AGE_GROUP_NAMES[age_order[k % len(AGE_GROUPS)]],
        GENDERS[gender_order[(k + k // len(ETHNICITIES)) % 2]],
        ETHNICITIES[ethnicity_order[k % len(ETHNICITIES)]],
    )


def assign_demographics(num_identities: int, seed: int) -> list[Demographics]:
    """Balanced demographics for identities 0..N-1 (see `identity_demographics`)."""
    if num_identities <= 0:
        raise ValueError(f"the number of identities must be positive, got {num_identities}")
    return [identity_demographics(seed, index) for index in range(num_identities)]
