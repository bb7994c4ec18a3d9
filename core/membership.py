"""`Membership`: a worker's side of partition assignment, as a background loop.

Every `heartbeat_s` it heartbeats in the region's worker registry, reads the manager's
assignment, and reconciles: for a partition assigned to this worker it acquires the
partition lease (fencing token) and starts a consumer; for one no longer assigned it
drains the consumer and releases the lease so the new owner can start at once; for one
kept it renews the lease, and a renewal that fails (expired, taken over) aborts the
consumer at once — its acks would be refused by the token check anyway. It also
forwards cancel requests to running handlers of its partitions.

Two cases look again sooner than a heartbeat: a partition assigned here whose lease its
previous owner still holds (it is draining it in a hand-over, and releases it within
its grace period) is tried every `HANDOVER_RETRY_S`; and a worker that owns nothing in
its first `FRESH_S` reads the assignment every `FRESH_POLL_S`, so that a worker added by
a scale-up serves within a fraction of a heartbeat of the manager's rebalance. After a
failover's scale-up these two waits were up to a second of the added worker's delay
(docs/failover-model.md).
"""

from __future__ import annotations

import asyncio
import logging
import time

from homeport.core.consumer import PartitionConsumer
from homeport.core.keys import PartitionKeys, RegionKeys
from homeport.core.loop import Loop
from homeport.core.runtime import WorkerRuntime

log = logging.getLogger(__name__)
HANDOVER_RETRY_S = 0.05
FRESH_S = 5.0
FRESH_POLL_S = 0.1


class Membership(Loop):
    """Holds the leases of the partitions assigned to one worker."""

    name = "membership"

    def __init__(self, rt: WorkerRuntime, stop_now: asyncio.Event | None = None) -> None:
        super().__init__(rt.settings.heartbeat_s, rt.metrics)
        self.rt = rt
        # Set by the worker's stop-now (a second SIGTERM): every drain, a hand-over's too,
        # stops waiting for running handlers.
        self.stop_now = stop_now or asyncio.Event()
        self._rk = RegionKeys(rt.settings.region)
        self.consumers: dict[int, PartitionConsumer] = {}
        self._handing_over: set[asyncio.Task[None]] = set()
        self.accepting = True
        self._born = time.monotonic()

    @property
    def owned(self) -> list[PartitionKeys]:
        return [c.pk for c in self.consumers.values()]

    async def run_once(self) -> float | None:
        rt, s = self.rt, self.rt.settings
        ttl_ms = int(s.lease_ttl_s * 1000)
        await rt.broker.heartbeat(self._rk, rt.worker_id, ttl_ms)
        assignment = await rt.broker.assignment(self._rk)
        mine = {p for p, w in assignment.items() if w == rt.worker_id} if self.accepting else set()
        # Renewals and acquisitions go out in one pipeline per node: under load each await
        # costs a full event-loop cycle, and a sequential round could outlast the TTL.
        keep = [(p, c) for p, c in self.consumers.items() if not c.lost and p in mine]
        for p, c in list(self.consumers.items()):
            if c.lost:
                await self._drop(p, graceful=False)
            elif p not in mine:
                self._hand_over(p)
        new = [p for p in sorted(mine - self.consumers.keys())]
        pks = [c.pk for _, c in keep] + [self._rk.partition(p) for p in new]
        tokens = await rt.broker.acquire_many(
            [(pk.lease, pk.fence) for pk in pks], rt.worker_id, ttl_ms
        )
        for (p, c), token in zip(keep, tokens, strict=False):
            if token != c.token and self.consumers.get(p) is c:
                log.warning("lost the lease of %s (token %d -> %d)", c.pk.name, c.token, token)
                await self._drop(p, graceful=False)
        acquired = held_elsewhere = False
        for p, token in zip(new, tokens[len(keep) :], strict=True):
            held_elsewhere |= token <= 0
            if token > 0:
                consumer = PartitionConsumer(rt, self._rk.partition(p), token)
                self.consumers[p] = consumer
                consumer.start()
                acquired = True
        if acquired:
            rt.on_acquired()  # the forwarder scans the new partitions' delayed tasks now
        await self._forward_cancels()
        rt.metrics.owned_partitions.labels(s.region).set(len(self.consumers))
        if held_elsewhere:
            return min(s.heartbeat_s, HANDOVER_RETRY_S)
        if not self.consumers and time.monotonic() - self._born < FRESH_S:
            return min(s.heartbeat_s, FRESH_POLL_S)
        return None

    async def _forward_cancels(self) -> None:
        busy = [c for c in self.consumers.values() if c.busy]
        got = await asyncio.gather(*(self.rt.broker.cancelled_ids(c.pk) for c in busy))
        for c, ids in zip(busy, got, strict=True):
            if ids:
                c.signal_cancel(ids)

    def _hand_over(self, p: int) -> None:
        consumer = self.consumers.pop(p)

        async def hand_over() -> None:
            await consumer.drain(self.rt.settings.shutdown_grace_s, self.stop_now)
            await self.rt.broker.release(consumer.pk.lease, self.rt.worker_id)

        t = asyncio.create_task(hand_over(), name=f"hand over {consumer.pk.name}")
        self._handing_over.add(t)
        t.add_done_callback(self._handing_over.discard)

    async def _drop(self, p: int, *, graceful: bool) -> None:
        consumer = self.consumers.pop(p, None)
        if consumer is None:
            return
        if graceful:
            await consumer.drain(self.rt.settings.shutdown_grace_s, self.stop_now)
        else:
            await consumer.abort()

    async def release_all(self, *, graceful: bool) -> None:
        """Stop every consumer (draining if `graceful`, until `stop_now` is set) and
        release their leases."""
        stop_now = self.stop_now
        self.accepting = False
        consumers = list(self.consumers.values())
        self.consumers.clear()
        grace = self.rt.settings.shutdown_grace_s

        async def one(c: PartitionConsumer) -> None:
            await (c.drain(grace, stop_now) if graceful else c.abort())
            try:
                await self.rt.broker.release(c.pk.lease, self.rt.worker_id)
            except Exception as exc:  # noqa: BLE001 - the lease then simply expires
                log.warning("could not release %s: %s", c.pk.name, exc)

        await asyncio.gather(*(one(c) for c in consumers))
        if self._handing_over:
            await asyncio.wait(list(self._handing_over))
        try:
            await self.rt.broker.leave(self._rk, self.rt.worker_id)
        except Exception as exc:  # noqa: BLE001 - the heartbeat then simply expires
            log.warning("could not leave the worker registry: %s", exc)
