"""Named random streams: every random choice in the generator draws from a stream keyed by its name and its
(seed, index, ...) coordinates, so adding or reordering draws elsewhere never shifts it (a leaf module)."""

from __future__ import annotations

import zlib

import numpy as np


def stream(name: str, *keys: int) -> np.random.Generator:
    """A generator for the stream `name` at integer coordinates `keys` (e.g. seed, identity index, view number).
    The name enters the seed as its CRC-32, so streams with different names are independent."""
    return np.random.default_rng(np.random.SeedSequence([*(int(k) for k in keys), zlib.crc32(name.encode())]))
