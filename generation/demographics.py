"""The demographic attributes synthetic identities are generated for, and the quota sampler that balances them.

These are the *intended* attributes of synthetic faces (what the generator aimed for), not measurements of people.
"""

from __future__ import annotations

import itertools
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


@dataclass(frozen=True)
class Demographics:
    age_group: str
    gender: str
    ethnicity: str
    age: int


def demographic_cells() -> list[tuple[str, str, str]]:
    """Every (age group, gender, ethnicity) combination, in a fixed order."""
    return list(itertools.product(AGE_GROUP_NAMES, GENDERS, ETHNICITIES))


def identity_demographics(seed: int, index: int) -> Demographics:
    """Demographics of identity `index`, from (seed, index) alone.

    Identities come in blocks of one full cross product of groups, each block in its own seeded random order, so
    the first N identities are exactly balanced when N is a multiple of the cross product's size, and otherwise
    no cell has more than one identity more than another. The age is uniform inside the group.
    """
    if index < 0:
        raise ValueError(f"identity index must be >= 0, got {index}")
    cells = demographic_cells()
    block, position = divmod(index, len(cells))
    age_group, gender, ethnicity = cells[stream("demographic_cells", seed, block).permutation(len(cells))[position]]
    low, high = next((low, high) for name, low, high in AGE_GROUPS if name == age_group)
    age = int(stream("age", seed, index).integers(low, high + 1))
    return Demographics(age_group, gender, ethnicity, age)


def assign_demographics(num_identities: int, seed: int) -> list[Demographics]:
    """Balanced demographics for identities 0..N-1 (see `identity_demographics`)."""
    if num_identities <= 0:
        raise ValueError(f"the number of identities must be positive, got {num_identities}")
    return [identity_demographics(seed, index) for index in range(num_identities)]
