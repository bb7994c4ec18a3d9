"""`Forwarder`: moves due delayed tasks of the owned partitions into their streams.

The partition owner forwards its own partitions (one forward.lua call each per step), so
forwarding scales with workers and never runs twice for one partition. One step costs one
pipelined round trip per Redis node for all owned partitions. A step sleeps until
the earliest known due time, but at most `forward_interval_s`, which bounds lateness for
tasks scheduled after the step looked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from homeport.core.broker import Broker
from homeport.core.keys import PartitionKeys
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics

_LIMIT = 1000


class Forwarder(Loop):
    """Delayed-task forwarder of a set of partitions given by `partitions()`."""

    name = "forwarder"

    def __init__(
        self,
        broker: Broker,
        partitions: Callable[[], list[PartitionKeys]],
        interval_s: float,
        metrics: Metrics,
    ) -> None:
        super().__init__(interval_s, metrics)
        self._broker = broker
        self._partitions = partitions

    async def run_once(self) -> float | None:
        pks = self._partitions()
        if not pks:
            return None
        now_ms = int(time.time() * 1000)
        got = await self._broker.forward_many(pks, now_ms, _LIMIT)
        soonest = self.interval_s
        for pk, (moved, nxt) in zip(pks, got, strict=True):
            if moved:
                self.metrics.forwarded.labels(pk.region, str(pk.number)).inc(moved)
            if moved >= _LIMIT:
                soonest = 0.0
            elif nxt >= 0:
                soonest = min(soonest, max(0.0, nxt / 1000 - time.time()))
        return soonest
