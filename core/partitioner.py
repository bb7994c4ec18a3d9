"""Which partition a key belongs to.

Public facade: `partition_of(key, partitions) -> int`, `partition_name(region, p)`.

The hash is **xxh3_64 of the key's UTF-8 bytes (seed 0), taken mod P**. It is stable
across processes, machines and Python versions (unlike `hash()`), fast (~100 ns), and
spreads well; golden vectors in `tests/core/test_partitioner.py` pin it, because changing
it would silently move every key to a new partition and break per-key order.
"""

from __future__ import annotations

import xxhash


def partition_of(key: str, partitions: int) -> int:
    """Partition number in [0, partitions) of `key`; `partitions` is P of the region."""
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, got {partitions}")
    return xxhash.xxh3_64_intdigest(key.encode("utf-8", errors="surrogatepass")) % partitions


def partition_name(region: str, partition: int) -> str:
    """The global name of a partition: `<home region>/<number>`, e.g. `eu-west/17`."""
    return f"{region}/{partition}"
