"""Identity-disjoint splits balanced by who is in them.

Identities are dealt to train / validation / test so that, at every number of identities N, every split holds its
share of every age group, gender and ethnicity to within one identity: with fraction f of the split and n_g of the
first N identities in group g, the split holds between f * n_g - 1 and f * n_g + 1 of them.

How: identities are dealt in rounds of 300 (five demographic blocks of `generation.demographics`, so every
(age group, gender, ethnicity) cell occurs five times). Each age group (60 per round), gender (150) and ethnicity
(50) then divides into the split fractions (tenths) exactly, and so do each gender and ethnicity in every block of
60. A round is dealt identity by identity, in order, by a depth-first search: each identity goes to the split
shortest of its fraction (then of this identity's groups), unless that takes one of its groups past +-1 of its share
or past the exact counts at the end of the block or round; a dead end backs up. Split sizes stay within 2 of their
fraction and are exact at every multiple of 60 identities. A round depends only on (seed, round, split fractions),
never on N, so workers, ranks and resumed runs agree.

With `test_identities` T (the fairness protocol, docs/fairness.md), identities 0..T-1 are the test split, T / 60 of
every cell, and the rounds start at T, dealt between train and validation.

A custom split (e.g. the official `--split-csv`) is not dealt here: `dataset_builder.official` reads it as given.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from ..columns import SPLITS
from ..demographics import CELLS_PER_BLOCK, demographic_cell

BLOCKS_PER_ROUND = 5  # 5 blocks of 60: every age group's 60 identities divide into tenths
ROUND = BLOCKS_PER_ROUND * CELLS_PER_BLOCK
SEARCH_BUDGET = 1_000_000  # search steps per set of caps (a few seconds); 70/20/10 took at most 365,407 (3 s)
# in 180 rounds (seeds 0-59), median 0.2 s a round


def split_tenths(fractions: Sequence[float]) -> tuple[int, ...]:
    """Split fractions (train, validation, test) as whole tenths, e.g. (0.7, 0.2, 0.1) -> (7, 2, 1)."""
    tenths = tuple(round(f * 10) for f in fractions)
    if len(tenths) != len(SPLITS) or min(tenths) < 0 or sum(tenths) != 10:
        raise ValueError(f"split fractions must be three multiples of 0.1 summing to 1, got {tuple(fractions)}")
    return tenths


def deal_round(cells: Sequence[tuple], tenths: Sequence[int], block: int = CELLS_PER_BLOCK,
               budget: int = SEARCH_BUDGET) -> tuple[int, ...]:
    """Split index (into SPLITS) of each identity of one round, from its cell (one group per attribute, e.g.
    (age group, gender, ethnicity)) and the split tenths.

    Every prefix keeps every group within +-1 of its share (fraction x members so far) and every group ends the round
    at exactly its share: first searched with each group also exact at the end of every `block` where its members
    divide into tenths (each gender and ethnicity, so the split sizes too), then without; past `budget` search steps
    each, the plain shortfall dealing (no guarantee; not needed in 180 rounds of 70/20/10, nor 60 of 80/20/0; some
    unusual fractions, e.g. 20/40/40, need it).
    """
    counters: dict[tuple[int, object], int] = {}
    members = [[counters.setdefault((a, g), len(counters)) for a, g in enumerate(cell)] for cell in cells]
    scale = sum(tenths)
    totals = [[0] * len(counters)]  # members of each counter by the end of each block
    for start in range(0, len(cells), block):
        totals.append(list(totals[-1]))
        for group in members[start:start + block]:
            for h in group:
                totals[-1][h] += 1
    exact = [[[m * t // scale for t in tenths] if all(m * t % scale == 0 for t in tenths) else None
              for m in column] for column in zip(*totals[1:])]  # exact[h][b]: counts at block b's end, if whole
    if any(row[-1] is None for row in exact):
        raise ValueError("a round must end where every group divides into the split tenths")
    at_blocks = [[next(row[c] for c in range(b, len(row)) if row[c] is not None) for b in range(len(row))]
                 for row in exact]
    at_end = [[row[-1]] * len(row) for row in exact]
    for caps in (at_blocks, at_end):
        dealt = _search(members, tenths, caps, block, budget)
        if dealt is not None:
            return dealt
    return _shortfall_dealing(members, tenths, len(counters))


def _search(members: list[list[int]], tenths: Sequence[int], caps: list[list[list[int]]], block: int,
            budget: int) -> tuple[int, ...] | None:
    """Depth-first dealing in identity order (see `deal_round`); caps[h][b]: most of counter h's members each split
    may hold by the end of block b. None when `budget` steps find no dealing."""
    scale, splits = sum(tenths), [s for s, t in enumerate(tenths) if t]
    seen, held, sizes = [0] * len(caps), [[0] * len(tenths) for _ in caps], [0] * len(tenths)

    def order(k: int) -> list[int]:  # the split shortest of its fraction first, then of this identity's groups
        return sorted(splits, key=lambda s: (-(tenths[s] * (k + 1) - scale * sizes[s]),
                                             -sum(tenths[s] * (seen[h] + 1) - scale * held[h][s] for h in members[k]),
                                             s))

    def allowed(k: int, s: int) -> bool:
        for h in members[k]:
            n = seen[h] + 1
            if held[h][s] + 1 > caps[h][k // block][s] or any(
                abs(scale * (held[h][t] + (t == s)) - tenths[t] * n) > scale for t in splits
            ):
                return False
        return True

    def move(k: int, s: int, step: int) -> None:
        sizes[s] += step
        for h in members[k]:
            seen[h] += step
            held[h][s] += step

    chosen: list[int] = []
    options = [order(0)] if members else []
    for _ in range(budget):
        k = len(chosen)
        if k == len(members):
            return tuple(chosen)
        if not options[k]:  # dead end: take back the previous identity's split
            options.pop()
            if not chosen:
                return None
            move(k - 1, chosen.pop(), -1)
            continue
        s = options[k].pop(0)
        if allowed(k, s):
            move(k, s, +1)
            chosen.append(s)
            if k + 1 < len(members):
                options.append(order(k + 1))
    return tuple(chosen) if len(chosen) == len(members) else None


def _shortfall_dealing(members: list[list[int]], tenths: Sequence[int], num_counters: int) -> tuple[int, ...]:
    """Each identity to the split its groups are shortest of, never backing up (no bound, about +-2 in practice)."""
    scale, splits = sum(tenths), [s for s, t in enumerate(tenths) if t]
    seen, held, out = [0] * num_counters, [[0] * len(tenths) for _ in range(num_counters)], []
    for group in members:
        s = min(splits, key=lambda s: (-sum(tenths[s] * (seen[h] + 1) - scale * held[h][s] for h in group), s))
        for h in group:
            seen[h] += 1
            held[h][s] += 1
        out.append(s)
    return tuple(out)


@lru_cache(maxsize=32)
def _round(seed: int, start: int, tenths: tuple[int, ...]) -> tuple[int, ...]:
    return deal_round([demographic_cell(seed, start + k) for k in range(ROUND)], tenths)


def dealt_split(seed: int, index: int, fractions: Sequence[float], test_identities: int = 0) -> str:
    """The split of identity `index`, from (seed, index, fractions, test_identities) alone.

    With `test_identities` T (a multiple of 60), identities 0..T-1 are the test split (T / 60 of every demographic
    cell) and the rest are dealt between train and validation, the test fraction going to train.
    """
    if index < test_identities:
        return "test"
    tenths = split_tenths(fractions)
    if test_identities:
        tenths = (tenths[0] + tenths[2], tenths[1], 0)
    number, k = divmod(index - test_identities, ROUND)
    return SPLITS[_round(seed, test_identities + number * ROUND, tenths)[k]]


__all__ = ["BLOCKS_PER_ROUND", "ROUND", "deal_round", "dealt_split", "split_tenths"]
