"""`Manager`: the region's active manager — partition assignment and periodic tasks.

Every candidate (each worker runs one unless told not to, and `homeport manager` runs a
standalone one) tries the region's leader lease every `heartbeat_s`; the holder, and only
it, rebalances partitions over live workers (`core.assignment.balance`) and fires
periodic tasks. Two leaders can overlap for at most one lease TTL after a stall; that is
harmless because partition leases, not the assignment, decide who consumes, and a
periodic tick's task id is deterministic, so its submit dedups.
(An etcd-based election replaces the Redis lease in `regions/`.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from homeport.core.app import App
from homeport.core.assignment import balance
from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.task import new_task

log = logging.getLogger(__name__)


class Manager(Loop):
    """Leader-elected loop of one region; see the module docstring."""

    name = "manager"

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        metrics: Metrics,
        candidate: str,
        app: App | None = None,
        epoch: Callable[[], int] = lambda: 0,
        on_assignment: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(settings.heartbeat_s, metrics)
        self._broker = broker
        self._settings = settings
        self._rk = RegionKeys(settings.region)
        self._candidate = candidate
        self._app = app
        self._epoch = epoch
        self._on_assignment = on_assignment
        self._producer = Producer(broker, settings, metrics)
        self._last_tick: dict[str, float] = {}
        self.is_leader = False

    async def run_once(self) -> float | None:
        s = self._settings
        token = await self._broker.acquire(
            self._rk.leader, self._rk.leader_fence, self._candidate, int(s.lease_ttl_s * 1000)
        )
        if (token > 0) != self.is_leader:
            log.info("region %s: %s manager leadership", s.region, "took" if token else "lost")
        self.is_leader = token > 0
        if not self.is_leader:
            return None
        await self.rebalance()
        if self._app is not None and self._app.periodics:
            await self.fire_periodic(time.time())
        return None

    async def rebalance(self) -> dict[int, str]:
        workers = await self._broker.live_workers(self._rk)
        current = await self._broker.assignment(self._rk)
        wanted = balance(current, workers, self._settings.partitions)
        changes = {p: w for p, w in wanted.items() if current.get(p) != w}
        if changes:
            log.info("rebalance over %d workers: %d partition(s) move", len(workers), len(changes))
            await self._broker.set_assignment(self._rk, changes)
            self._on_assignment()
        return wanted

    async def fire_periodic(self, now: float) -> int:
        """Enqueue each periodic task whose latest tick was not fired yet; returns count."""
        if self._app is None:
            return 0
        tasks = []
        for per in self._app.periodics:
            tick = per.tick_at_or_before(now)
            if self._last_tick.get(per.name) == tick:
                continue
            self._last_tick[per.name] = tick
            tasks.append(
                new_task(per.key, per.kind, per.payload, id=f"periodic:{per.name}:{int(tick)}")
            )
        if not tasks:
            return 0
        results = await self._producer.submit_many(tasks, epoch=self._epoch())
        return sum(1 for r in results if r.ok and not r.duplicate)

    async def resign(self) -> None:
        await self._broker.release(self._rk.leader, self._candidate)
        self.is_leader = False
