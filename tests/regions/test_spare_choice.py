"""Candidate standby choice on a real four-region cluster (etcd, Redis, killed
processes): after us-east is lost and promoted to its mirror in eu-west, two surviving
regions could lend their spare as us-east's next standby (ap-south first in ring order,
then sa-east). The controller asks the capacity model about each and lends the spare of
the one whose parked workers can absorb us-east; without a model, ring order stands."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from homeport.regions import capacity, protection
from homeport.regions.capacity import CapacityModel, LoadReport
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.health import read_all_verdicts
from homeport.simulation.absorb import answer

from tests.conftest import _start
from tests.regions.failover_loops import failover_loops, wait_until

SURVIVORS = ("eu-west", "ap-south", "sa-east")


@pytest.fixture
def four(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from _start(ClusterSpec.default(4, partitions=4), "spare", state_dir_factory)


def _report(region: str, rate: float, workers: int, parked: bool) -> LoadReport:
    return LoadReport("us-east", region, rate, 0.05, workers, 4, parked, 30.0, time.time())


async def _lose_us_east(cluster: DevCluster, model: CapacityModel | None) -> tuple[str, list[str]]:
    """Kill us-east, let the controllers promote and re-protect it; (the region whose
    spare protects us-east, the controllers' event kinds)."""
    topo = cluster.topology
    loops = await failover_loops(topo, SURVIVORS, model)
    reader = loops.planes["eu-west"]
    prefix = topo.etcd_prefix
    # us-east ran 120 tasks/s of 50 ms. After its failover eu-west serves it; ap-south
    # parks one worker of 4 slots for it (80 tasks/s at most: undersized), sa-east eight.
    for report in (
        _report("us-east", 120, 6, False),
        _report("eu-west", 0, 8, True),
        _report("ap-south", 0, 1, True),
        _report("sa-east", 0, 8, True),
    ):
        await capacity.publish_report(reader.etcd, prefix, report)
    loops.start()
    try:

        async def all_reported() -> bool:
            votes = (await read_all_verdicts(reader.etcd, prefix)).get("us-east", [])
            return {v.observer for v in votes if v.ok} >= set(SURVIVORS)

        await wait_until(all_reported, 30, "the observers to report us-east healthy")
        for record in cluster.records():
            if record.region == "us-east":
                os.kill(record.pid, signal.SIGKILL)

        async def protected() -> bool:
            try:
                return "us-east" in await protection.load(reader)
            except Exception:  # noqa: BLE001 - etcd may still be electing a leader
                return False

        await wait_until(protected, 60, "us-east's re-protection")
        lent = (await protection.load(reader))["us-east"]
        return lent.region, [e.kind for c in loops.controllers for e in c.events]
    finally:
        await loops.stop()


@pytest.mark.timeout(300)
async def test_the_spare_whose_region_can_absorb_the_home_is_lent(four: DevCluster) -> None:
    region, kinds = await _lose_us_east(four, answer)
    assert "promoted" in kinds
    assert region == "sa-east", "ap-south comes first in ring order but cannot absorb"
    assert "spare-chosen" in kinds, "the choice away from ring order was said"


@pytest.mark.timeout(300)
async def test_without_a_capacity_model_ring_order_stands(four: DevCluster) -> None:
    region, kinds = await _lose_us_east(four, None)
    assert region == "ap-south" and "spare-chosen" not in kinds
