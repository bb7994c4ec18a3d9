"""The gateway's write fence: a gateway may write only while it holds an etcd lease.

A gateway cut off from the etcd quorum (its region isolated) cannot keep its lease
alive; `HeldLease.valid` turns false `margin` seconds before etcd could expire it, and
the failover controller waits at least one lease TTL past the quorum's verdict before it
promotes. So a partitioned old home has stopped accepting writes (UNAVAILABLE) before
its partitions move, and the epoch check in the enqueue script covers any write already
in flight.
"""

from __future__ import annotations

import json
import time

import aetcd
from homeport.regions.leases import HeldLease


class WriteFence:
    """Registers the gateway under `<prefix>/gateways/<region>/<id>` with its lease."""

    def __init__(
        self, client: aetcd.Client, prefix: str, region: str, gateway_id: str, ttl: int = 3
    ) -> None:
        self.lease = HeldLease(client, ttl)
        self.client = client
        self.key = f"{prefix.rstrip('/')}/gateways/{region}/{gateway_id}".encode()
        self.region = region

    async def start(self, address: str) -> None:
        lease_id = await self.lease.grant()
        body = {"address": address, "since": time.time()}
        await self.client.put(self.key, json.dumps(body).encode(), lease=lease_id)
        self.lease.start()

    @property
    def open(self) -> bool:
        """True while writes are allowed."""
        return self.lease.valid

    async def stop(self) -> None:
        await self.lease.stop(revoke=True)
