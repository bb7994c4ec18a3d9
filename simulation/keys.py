"""Drawing partition keys for arrivals, and mapping keys to partitions.

Keys are integers in the model. The real partitioner hashes the key string with a stable
hash; `key mod P` over uniformly drawn integers spreads keys over partitions the same way
and keeps the model free of hashing cost.
"""

from __future__ import annotations

import numpy as np
from homeport.simulation.params import KeySpace


class KeySampler:
    """Draws keys of one region in blocks, honouring Zipf skew and one hot key."""

    def __init__(self, space: KeySpace, rng: np.random.Generator) -> None:
        self._space = space
        self._rng = rng
        self._cdf: np.ndarray | None = None
        if space.zipf_s > 0:
            weights = 1.0 / np.arange(1, space.count + 1) ** space.zipf_s
            self._cdf = np.cumsum(weights / weights.sum())

    def draw(self, size: int) -> np.ndarray:
        space = self._space
        if self._cdf is None:
            keys = self._rng.integers(0, space.count, size)
        else:
            keys = np.searchsorted(self._cdf, self._rng.random(size), side="right")
            keys = np.minimum(keys, space.count - 1)
        if space.hot_key_share > 0:
            keys = np.where(self._rng.random(size) < space.hot_key_share, 0, keys)
        return keys
