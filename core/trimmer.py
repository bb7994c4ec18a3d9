"""`Trimmer`: keeps Redis memory flat for the owned partitions, and probes their depth.

Each step, per partition: XTRIM MINID below the oldest entry still needed (pending or
undelivered), prune cancel marks older than the dedup window, and export queue depth and
the ages of the oldest pending and of the oldest waiting (undelivered) entry as gauges.
Dedup keys need no trimming: they expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from homeport.core.broker import Broker
from homeport.core.keys import PartitionKeys
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics


class Trimmer(Loop):
    """Stream trimmer and depth probe of the partitions given by `partitions()`."""

    name = "trimmer"

    def __init__(
        self,
        broker: Broker,
        partitions: Callable[[], list[PartitionKeys]],
        interval_s: float,
        cancel_ttl_s: float,
        metrics: Metrics,
    ) -> None:
        super().__init__(interval_s, metrics)
        self._broker = broker
        self._partitions = partitions
        self._cancel_ttl_ms = int(cancel_ttl_s * 1000)
        self._exported: set[tuple[str, str]] = set()  # (region, partition) gauges we set

    async def run_once(self) -> float | None:
        exported: set[tuple[str, str]] = set()
        for pk in self._partitions():
            now_ms = int(time.time() * 1000)
            labels = (pk.region, str(pk.number))
            removed = await self._broker.trim(pk, now_ms - self._cancel_ttl_ms)
            if removed:
                self.metrics.trimmed.labels(*labels).inc(removed)
            depth = await self._broker.depth(pk, now_ms)
            self.metrics.queue_depth.labels(*labels, "ready").set(depth.ready)
            self.metrics.queue_depth.labels(*labels, "pending").set(depth.pending)
            self.metrics.queue_depth.labels(*labels, "delayed").set(depth.delayed)
            self.metrics.oldest_pending_age.labels(*labels).set(depth.oldest_pending_ms / 1000)
            self.metrics.oldest_waiting_age.labels(*labels).set(depth.oldest_ready_ms / 1000)
            exported.add(labels)
        # A partition that moved to another worker is that worker's to report: drop our
        # last reading so two processes never export the same series with different ages.
        for labels in self._exported - exported:
            for state in ("ready", "pending", "delayed"):
                self.metrics.queue_depth.remove(*labels, state)
            self.metrics.oldest_pending_age.remove(*labels)
            self.metrics.oldest_waiting_age.remove(*labels)
        self._exported = exported
        return None
