"""Every Redis key name the engine uses, built here and nowhere else.

A partition's keys share the hash tag `{<region>/<p>}` so they live in one Redis Cluster
slot: the Lua scripts may touch several of them atomically, and one pipeline per partition
goes to one node. Region-wide keys (worker registry, assignment, elections) use the tag
`{<region>}`.

    hp:{us-east/3}:stream          stream of ready tasks (consumer group `workers`)
    hp:{us-east/3}:delayed         zset task id -> due time (ms)
    hp:{us-east/3}:delayed:data    hash task id -> msgpack of the entry's fields
    hp:{us-east/3}:epoch           int, the partition's serving epoch (fencing of writers)
    hp:{us-east/3}:dedup:<id>      entry id of the first submission, expires (dedup window)
    hp:{us-east/3}:dead            dead-letter stream
    hp:{us-east/3}:lease           hash owner/token: which worker consumes the partition
    hp:{us-east/3}:fence           int, last lease token handed out (never expires)
    hp:{us-east/3}:started         hash task id -> "<entry id>|<times begun>" (unfinished)
    hp:{us-east/3}:cancelled       zset task id -> cancel time (ms)
    hp:{us-east}:workers           zset worker id -> heartbeat expiry (ms)
    hp:{us-east}:assignment        hash partition number -> worker id
    hp:{us-east}:leader            hash owner/token: the region's active manager
    hp:{us-east}:kinds             hash task kind -> last time a worker announced it (ms)
    hp:{us-east}:due               pub/sub channel, not a key: "<delayed zset> <due ms>" per
                                   enqueue that added delayed tasks (wakes the forwarder)
    hp:{us-east}:fenced            pub/sub channel: the epoch, each time the region's
                                   partitions were fenced (wakes parked workers)
"""

from __future__ import annotations

import dataclasses

GROUP = "workers"


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionKeys:
    """Key names of one partition `<region>/<number>`."""

    region: str
    number: int

    @property
    def name(self) -> str:
        return f"{self.region}/{self.number}"

    @property
    def _prefix(self) -> str:
        return f"hp:{{{self.region}/{self.number}}}"

    @property
    def stream(self) -> str:
        return f"{self._prefix}:stream"

    @property
    def delayed(self) -> str:
        return f"{self._prefix}:delayed"

    @property
    def delayed_data(self) -> str:
        return f"{self._prefix}:delayed:data"

    @property
    def epoch(self) -> str:
        return f"{self._prefix}:epoch"

    def dedup(self, task_id: str) -> str:
        return f"{self._prefix}:dedup:{task_id}"

    @property
    def dead(self) -> str:
        return f"{self._prefix}:dead"

    @property
    def lease(self) -> str:
        return f"{self._prefix}:lease"

    @property
    def fence(self) -> str:
        return f"{self._prefix}:fence"

    @property
    def started(self) -> str:
        return f"{self._prefix}:started"

    @property
    def cancelled(self) -> str:
        return f"{self._prefix}:cancelled"


@dataclasses.dataclass(frozen=True, slots=True)
class RegionKeys:
    """Key names shared by a whole region (one slot, tag `{<region>}`)."""

    region: str

    @property
    def workers(self) -> str:
        return f"hp:{{{self.region}}}:workers"

    @property
    def assignment(self) -> str:
        return f"hp:{{{self.region}}}:assignment"

    @property
    def leader(self) -> str:
        return f"hp:{{{self.region}}}:leader"

    @property
    def leader_fence(self) -> str:
        return f"hp:{{{self.region}}}:leader:fence"

    @property
    def kinds(self) -> str:
        return f"hp:{{{self.region}}}:kinds"

    @property
    def due(self) -> str:
        """The channel on which enqueue.lua announces delayed tasks (`core.forwarder`)."""
        return f"hp:{{{self.region}}}:due"

    @property
    def fenced(self) -> str:
        """The channel on which a fence (a promotion, a failback) announces its epoch:
        parked workers wake on it (`core.worker.wait_for_promotion`)."""
        return f"hp:{{{self.region}}}:fenced"

    def partition(self, number: int) -> PartitionKeys:
        return PartitionKeys(self.region, number)
