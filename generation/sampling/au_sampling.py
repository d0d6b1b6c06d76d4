"""Pain AU configurations whose PSPI values cover 1..16 evenly, with plausible co-occurrence of the pain AUs.

PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43. A target PSPI is chosen first (balanced over the dataset),
then split into its four terms (favouring balanced co-activation, eyes closing more often in strong pain), then
each max() term into its two AUs (the partner AU co-occurs at an equal or lower intensity).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..facs import ACTION_UNITS, EXTENDED_AUS, PSPI_MAX, pspi
from ..rng import stream

PSPI_LEVELS = tuple(range(1, PSPI_MAX + 1))
# (AU4, max(AU6, AU7), max(AU9, AU10), AU43) for every reachable PSPI
_TERMS = [t for t in itertools.product(range(6), range(6), range(6), range(2))]


def pspi_target(seed: int, identity_index: int, expression: int, expressions_per_identity: int) -> int:
    """Target PSPI (1..16) of pain expression `expression` (0-based) of an identity. The stream of all pain
    expressions is cut into blocks of 16, each a seeded permutation of 1..16, so any prefix of the dataset is
    balanced to within one per level."""
    position = identity_index * expressions_per_identity + expression
    block, offset = divmod(position, len(PSPI_LEVELS))
    return PSPI_LEVELS[stream("pspi_targets", seed, block).permutation(len(PSPI_LEVELS))[offset]]


def _split_terms(target: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    eyes_closed_probability = float(np.clip((target - 4) / 12, 0.05, 0.8))
    candidates, weights = [], []
    for brow, orbit, levator, closed in _TERMS:
        if brow + orbit + levator + closed != target:
            continue
        mean = (target - closed) / 3
        spread = (brow - mean) ** 2 + (orbit - mean) ** 2 + (levator - mean) ** 2
        weights.append(np.exp(-spread / (2 * 1.5**2)) * (eyes_closed_probability if closed else 1 - eyes_closed_probability))
        candidates.append((brow, orbit, levator, closed))
    weights = np.asarray(weights) / np.sum(weights)
    return candidates[rng.choice(len(candidates), p=weights)]


def _split_max(value: int, primary: str, secondary: str, primary_probability: float, rng) -> dict[str, float]:
    """Two AUs whose max is `value`: one holds it, the other co-occurs at 0..value (mostly close to it)."""
    if value == 0:
        return {primary: 0.0, secondary: 0.0}
    lead, partner = (primary, secondary) if rng.random() < primary_probability else (secondary, primary)
    partner_value = int(rng.integers(max(0, value - 2), value + 1)) if rng.random() < 0.8 else 0
    return {lead: float(value), partner: float(partner_value)}


def sample_pain_action_units(
    target: int, rng: np.random.Generator, distractor_probability: float = 0.0
) -> dict[str, float]:
    """AU intensities (integers 0-5, AU43 0/1) with exactly PSPI = `target`; with `distractor_probability` one
    non-pain AU (AU12, AU20, AU25 or AU26) is added at intensity 1-3, leaving PSPI unchanged."""
    if target not in PSPI_LEVELS:
        raise ValueError(f"target PSPI must be an integer in 1..{PSPI_MAX}, got {target}")
    brow, orbit, levator, closed = _split_terms(target, rng)
    action_units = {"AU4": float(brow)}
    action_units |= _split_max(orbit, "AU7", "AU6", 0.55, rng)
    action_units |= _split_max(levator, "AU10", "AU9", 0.6, rng)
    action_units["AU43"] = float(closed)
    ordered = {name: action_units[name] for name in ACTION_UNITS if name in action_units}
    if distractor_probability and rng.random() < distractor_probability:
        ordered[EXTENDED_AUS[rng.integers(len(EXTENDED_AUS))]] = float(rng.integers(1, 4))
    assert pspi(ordered) == target
    return ordered
