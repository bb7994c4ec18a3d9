"""Drawing partition keys for arrivals, and mapping keys to partitions.

Keys are integers in the model; key k is named `keys.name_format` with rank k + 1 (the
load test's `lt-<rank>` by default). Its partition is the real partitioner's
(`homeport.core.partitioner.partition_of`: xxh3 of the name, mod P), computed once per
key into a table, so the model sees the same uneven spread of keys over partitions as
the system (with 100,000 uniform keys over 16 partitions the busiest partition carries
about 2% more than the mean; with few keys, much more).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from homeport.core.partitioner import partition_of
from homeport.simulation.params import KeySpace


@lru_cache(maxsize=16)
def _table(count: int, name_format: str, partitions: int) -> np.ndarray:
    return np.fromiter(
        (partition_of(name_format.format(rank=k + 1), partitions) for k in range(count)),
        dtype=np.int64,
        count=count,
    )


def partition_table(space: KeySpace, partitions: int) -> np.ndarray:
    """The partition of every key number in `space`, by the real partitioner."""
    return _table(space.count, space.name_format, partitions)


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
