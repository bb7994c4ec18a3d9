"""A paused (SIGSTOP, not killed) etcd member is left for another within the lease
margin (issue 18, point 4): the etcd channel's gRPC keep-alive closes the silent
connection and `pick_first` moves on, so a lease held through it stays valid. Real
etcd members of the test cluster, reached through their Toxiproxy links."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from homeport.regions.devcluster import DevCluster
from homeport.regions.etcd import connect, endpoints_for
from homeport.regions.leases import HeldLease

PAUSE_S = 8.0


async def test_a_lease_held_through_a_paused_local_member_stays_valid(
    dev_cluster: DevCluster,
) -> None:
    member = next(r for r in dev_cluster.records() if r.name == "etcd-ap-south")
    client = await connect(endpoints_for(dev_cluster.topology, "ap-south"))  # own first
    lease = HeldLease(client, ttl=3)
    await lease.grant()
    lease.start()
    lowest = float(lease.ttl)
    os.kill(member.pid, signal.SIGSTOP)
    try:
        paused_at = time.monotonic()
        while time.monotonic() - paused_at < PAUSE_S:
            await asyncio.sleep(0.05)
            lowest = min(lowest, lease.remaining())
            assert lease.valid, f"lease lapsed {time.monotonic() - paused_at:.2f} s into the pause"
        # The lease really was kept alive by another member: etcd still has it.
        info = await client.get_lease_info(lease.lease_id)
        assert info.TTL > 0
    finally:
        os.kill(member.pid, signal.SIGCONT)
        await lease.stop()
        await client.close()
    print(f"\nlowest remaining lease validity during the pause: {lowest:.2f} s")
