"""Which region is a key's home.

A pin rule of the topology wins (data residency: keys `eu:*` live in `eu-west`). Any other
key is placed by hash: **xxh3_64 of the key's UTF-8 bytes with seed 0x9E3779B9, mod the
number of regions**, indexing the topology's region list. The seed differs from the
partitioner's (seed 0) so that a key's region and its partition number are independent;
with the same hash, `h mod R` and `h mod P` would correlate whenever R and P share a
factor, leaving some partitions of each region empty.
"""

from __future__ import annotations

import xxhash
from homeport.regions.topology import Topology

PLACEMENT_SEED = 0x9E3779B9


def home_region(key: str, topology: Topology) -> str:
    pinned = topology.home_of(key)
    if pinned is not None:
        return pinned
    digest = xxhash.xxh3_64_intdigest(key.encode("utf-8", errors="surrogatepass"), PLACEMENT_SEED)
    return topology.regions[digest % len(topology.regions)].name
