"""An etcd lease held alive by a background task, with a local view of its validity.

`valid` is judged on this process's monotonic clock: the lease counts as held only until
`last successful keep-alive + ttl - margin`. etcd expires the lease `ttl` after the last
keep-alive *it* saw, which is no earlier than ours, so a holder always stops believing
in its lease before etcd can give the key to anyone else. That ordering is what lets a
gateway stop writing before a failover can start (docs/multi-region.md, "Deciding that
a region is down").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aetcd

log = logging.getLogger(__name__)


class HeldLease:
    def __init__(self, client: aetcd.Client, ttl: int = 3, margin: float = 0.5) -> None:
        if ttl < 2:
            raise ValueError(f"lease ttl must be at least 2 s, got {ttl}")
        self.client = client
        self.ttl = ttl
        self.margin = margin
        self.lease_id: int | None = None
        self._valid_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()

    @property
    def valid(self) -> bool:
        return self.lease_id is not None and time.monotonic() < self._valid_until

    def remaining(self) -> float:
        """Seconds this holder still believes in its lease (0 once it lapsed)."""
        return max(0.0, self._valid_until - time.monotonic())

    async def grant(self) -> int:
        asked = time.monotonic()
        lease = await self.client.lease(self.ttl)
        self.lease_id = lease.id
        self._valid_until = asked + self.ttl - self.margin
        self.lost.clear()
        return int(lease.id)

    async def refresh(self) -> bool:
        if self.lease_id is None:
            return False
        asked = time.monotonic()
        try:
            reply = await asyncio.wait_for(self.client.refresh_lease(self.lease_id), self.ttl / 3)
        except (aetcd.ClientError, TimeoutError, OSError) as exc:
            log.debug("lease %s keep-alive failed: %s", self.lease_id, exc)
            return self.valid
        if reply is None or reply.TTL <= 0:
            self.lease_id = None
            self.lost.set()
            return False
        self._valid_until = asked + self.ttl - self.margin
        return True

    def start(self) -> None:
        """Keep the lease alive in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keepalive(), name="etcd-lease")

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 4)
            if self.lease_id is None:
                try:
                    await asyncio.wait_for(self.grant(), self.ttl / 2)
                except (aetcd.ClientError, TimeoutError, OSError):
                    continue
            elif not await self.refresh() and not self.valid:
                self.lease_id = None
                self.lost.set()

    async def stop(self, revoke: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if revoke and self.lease_id is not None:
            try:
                await asyncio.wait_for(self.client.revoke_lease(self.lease_id), 1)
            except (aetcd.ClientError, TimeoutError, OSError):
                pass
        self.lease_id = None
