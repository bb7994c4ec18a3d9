"""`Forwarder`: moves due delayed tasks of the owned partitions into their streams.

The partition owner forwards its own partitions (one forward.lua call each per step), so
forwarding scales with workers and never runs twice for one partition. One step costs one
pipelined round trip per Redis node for all owned partitions, and learns the earliest due
time still delayed. The forwarder sleeps until then, but at most `forward_interval_s`.

A task delayed *after* a step looked is announced instead of polled for: enqueue.lua
publishes "<delayed zset> <earliest due ms>" on the region's channel (`RegionKeys.due`),
and a retry the worker itself schedules is noticed in-process (`notice`). A notice due
before the planned step moves that step to its due time. Pub/sub is at most once (a
notice published while the subscriber reconnects is lost), so `forward_interval_s`
(default 1 s) still bounds the lateness of a missed one; a fresh subscription runs a
step at once. Polling every 20 ms instead, as the forwarder did before, cost an idle
worker 10 % of a core and its Redis 50 script pipelines a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from homeport.core.broker import Broker
from homeport.core.errors import HomeportError
from homeport.core.keys import PartitionKeys, RegionKeys
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.core.retry import warn_repeated

log = logging.getLogger(__name__)

_LIMIT = 1000


class Forwarder(Loop):
    """Delayed-task forwarder of a set of partitions given by `partitions()`, all of
    `region`."""

    name = "forwarder"

    def __init__(
        self,
        broker: Broker,
        region: str,
        partitions: Callable[[], list[PartitionKeys]],
        interval_s: float,
        metrics: Metrics,
    ) -> None:
        super().__init__(interval_s, metrics)
        self._broker = broker
        self._region = RegionKeys(region)
        self._partitions = partitions
        self._next_step = 0.0  # wall time of the planned next step
        self._hint = math.inf  # earliest due time noticed since the last step
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        super().start()
        self._listener = asyncio.create_task(self._listen(), name="forwarder-notices")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await super().stop()

    def notice(self, delayed_key: str, due_ms: int) -> None:
        """A task of the zset `delayed_key` is due at `due_ms`: if this forwarder owns the
        partition and the task is due before its planned step, step at its due time."""
        due = due_ms / 1000
        if due >= self._next_step or due >= self._hint:
            return
        if not any(pk.delayed == delayed_key for pk in self._partitions()):
            return
        self._hint = due
        self.wake()  # the step re-plans its sleep with the hint

    async def run_once(self) -> float | None:
        pks = self._partitions()
        now = time.time()
        if self._hint <= now:
            self._hint = math.inf  # this step covers it
        # Until this step has planned the next, every notice counts: the task it
        # announces may have been delayed after this step's script looked.
        self._next_step = math.inf
        if not pks:
            self._next_step = now + self.interval_s
            return None
        got = await self._broker.forward_many(pks, int(now * 1000), _LIMIT)
        soonest = self.interval_s
        for pk, (moved, nxt) in zip(pks, got, strict=True):
            if moved:
                self.metrics.forwarded.labels(pk.region, str(pk.number)).inc(moved)
            if moved >= _LIMIT:
                soonest = 0.0
            elif nxt >= 0:
                soonest = min(soonest, max(0.0, nxt / 1000 - time.time()))
        if self._hint < math.inf:
            soonest = min(soonest, max(0.0, self._hint - time.time()))
        self._next_step = time.time() + soonest
        return soonest

    async def _listen(self) -> None:
        """Keep a subscription to the region's notices; on a failure, retry every
        interval (the fallback step runs meanwhile)."""
        failures = 0

        def subscribed() -> None:
            nonlocal failures
            failures = 0
            self._next_step = 0.0  # notices may have been missed: step now
            self.wake()

        while True:
            try:
                async with self._broker.subscribed(self._region.due) as notices:
                    subscribed()
                    while True:
                        key, _, due = (await notices.next(None) or "").rpartition(" ")
                        if key and due.isdigit():
                            self.notice(key, int(due))
            except HomeportError as exc:
                failures += 1
                self.metrics.loop_errors.labels("forwarder-notices").inc()
                warn_repeated(log, "forwarder: delayed-task notices", failures, exc)
            await asyncio.sleep(self.interval_s)
