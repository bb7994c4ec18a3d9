"""In-process failover loops on a real cluster, for tests that drive a region loss
themselves: every region's health observer and the controllers of the surviving regions
(with a capacity model or none), on the cluster's own etcd and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeport.core.metrics import Metrics
from homeport.regions.capacity import CapacityModel
from homeport.regions.control import ControlPlane
from homeport.regions.controller import Controller
from homeport.regions.health import Observer
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.topology import Topology
from prometheus_client import CollectorRegistry


@dataclass
class FailoverLoops:
    planes: dict[str, ControlPlane]
    observers: list[Observer]
    controllers: list[Controller]
    rm: RegionsMetrics

    def start(self) -> None:
        for loop in [*self.observers, *self.controllers]:
            loop.start()

    async def stop(self) -> None:
        for loop in [*self.controllers, *self.observers]:
            await loop.stop()
        for plane in self.planes.values():
            await plane.close()


async def failover_loops(
    topo: Topology, controllers: tuple[str, ...], model: CapacityModel | None
) -> FailoverLoops:
    """Built, not started; the routing table bootstrapped."""
    registry = CollectorRegistry()
    metrics, rm = Metrics(registry), RegionsMetrics(registry)
    rm.start(topo)
    planes = {r: await ControlPlane.open(topo, r) for r in topo.region_names()}
    observers = [Observer(topo, r, planes[r].etcd, metrics, rm) for r in topo.region_names()]
    ctl = [
        Controller(planes[r], f"controller-{r}", metrics, rm, confirm_s=3.0, capacity_model=model)
        for r in controllers
    ]
    await planes[controllers[0]].routing.bootstrap(topo)
    return FailoverLoops(planes, observers, ctl, rm)


async def wait_until(predicate: Callable[[], Awaitable[object]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
