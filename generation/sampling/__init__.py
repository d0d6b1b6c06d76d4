"""The sampling stage: everything random about an identity (`identity`: demographics, shape, lighting, split),
its looks (`appearance`) and its pain AU configurations (`au_sampling`), all from (seed, index) alone."""
