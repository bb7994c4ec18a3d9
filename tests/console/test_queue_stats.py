"""The numbers behind the Queues and Regions pages: RegionStatus's per-partition counters,
backlog and lease owner, and the replicas of the region's primary, on a real cluster."""

from __future__ import annotations

import uuid

import pytest
from homeport.regions.devcluster import DevCluster
from homeport.regions.placement import home_region
from homeport.router.client import AsyncClient
from homeport.router.views import NewTask, RegionView

from tests.console.conftest import until

pytestmark = pytest.mark.timeout(300)


def _home(view: RegionView, home: str) -> dict[str, int]:
    parts = [p for p in view.partitions if p.partition.startswith(home + "/")]
    return {
        "added": sum(p.added_total for p in parts),
        "delivered": sum(p.delivered_total for p in parts),
        "owned": sum(1 for p in parts if p.worker),
        "partitions": len(parts),
    }


async def test_region_status_counts_submits_and_runs_and_names_the_replicas(
    console_cluster: DevCluster,
) -> None:
    topo = console_cluster.topology
    gateway = topo.dial("client", "eu-west", "gateway", topo.region("eu-west").gateway or "")
    async with AsyncClient(gateway, timeout=5.0) as client:
        before = _home(await client.region_status(), "eu-west")
        keys = (f"stats-{uuid.uuid4().hex[:8]}" for _ in range(10_000))
        mine = [k for k in keys if home_region(k, topo) == "eu-west"][:20]
        await client.submit_many([NewTask("noop", k) for k in mine])

        async def counted() -> bool:
            now = _home(await client.region_status(), "eu-west")
            return now["delivered"] >= before["delivered"] + len(mine)

        await until(counted, 60, "the 20 submits to be delivered to workers")
        view = await client.region_status()
    after = _home(view, "eu-west")
    assert after["added"] == before["added"] + len(mine)
    assert after["owned"] == after["partitions"] == topo.region("eu-west").partitions
    region = topo.region("eu-west")
    ports = {r.address.rpartition(":")[2]: r.state for r in view.replicas}
    # the in-region replica and the cross-region mirror, both in sync
    for address in [*region.redis.replicas, region.redis.mirror or ""]:
        assert ports.get(address.rpartition(":")[2]) == "online", view.replicas
