"""Which keys this gateway may write, and at which epoch: the server side of routing.

A gateway writes a key only when the key's home region is served here; the epoch it
writes with goes into the enqueue script, which refuses it (FENCED) once a promotion has
moved the partition on. `ServingCheck` is the seam: the multi-region work replaces
`StaticServing` with one that follows the routing table and epochs in etcd and stops
answering when the gateway's etcd lease lapses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from homeport.core.errors import WrongRegion
from homeport.core.partitioner import partition_name


@dataclass(frozen=True)
class Placement:
    """Where a key's tasks go: partition `partition` of `home_region`, written at `epoch`."""

    key: str
    home_region: str
    partition: int
    epoch: int

    @property
    def name(self) -> str:
        return partition_name(self.home_region, self.partition)


@dataclass(frozen=True)
class ServedPartition:
    home_region: str
    partition: int
    epoch: int

    @property
    def name(self) -> str:
        return partition_name(self.home_region, self.partition)


class ServingCheck(Protocol):
    def place(self, key: str) -> Placement:
        """The placement of `key`, or raise `core.errors.WrongRegion` naming its owner."""
        ...

    def served(self) -> list[ServedPartition]:
        """Every partition this gateway writes, with its epoch."""
        ...

    def owner_hints(self, partition: str) -> dict[str, str]:
        """What this gateway knows about who serves `partition` now (owner_region,
        gateway), to enrich a FENCED answer; empty when it knows nothing."""
        ...


@dataclass(eq=False)
class StaticServing:
    """One home region, all of its partitions, one epoch, fixed at start.

    Keys pinned (by the topology's pin rules) to another region are refused with
    WRONG_REGION naming that region's gateway; every other key is placed here. Hash
    placement of unpinned keys over several regions arrives with the routing table.
    """

    region: str
    partitions: int
    epoch: int
    _: KW_ONLY
    partition_of: Callable[[str, int], int]
    pin: Callable[[str], str | None] = lambda key: None
    gateways: Mapping[str, str] = field(default_factory=dict)  # region -> its gateway

    def place(self, key: str) -> Placement:
        home = self.pin(key) or self.region
        if home != self.region:
            raise WrongRegion(key, home, self.epoch, self.gateways.get(home, ""))
        return Placement(key, home, self.partition_of(key, self.partitions), self.epoch)

    def served(self) -> list[ServedPartition]:
        return [ServedPartition(self.region, p, self.epoch) for p in range(self.partitions)]

    def owner_hints(self, partition: str) -> dict[str, str]:
        region = partition.partition("/")[0]
        gateway = self.gateways.get(region, "")
        return {"owner_region": region, "gateway": gateway} if gateway else {}
