"""`kill_controller`: SIGKILL the failover controller in the middle of a promotion.

From `at`, the step watches `region`'s route in etcd. The moment the elected controller
moves it to the standby's mirror (the first step of `regions.promotion.promote`), the
agent that holds the controller's leadership (`<prefix>/controller/leader`, named
`agent-<region>-<pid>`) is SIGKILLed with its process group. Another agent's controller
must then win the election and finish the promotion (`Controller._complete`). The detail
says whether the kill really landed mid-promotion (the mirror still a replica right
after it) or after the promotion had already finished. With `for`, the agent is started
again afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import aetcd
from homeport.chaos.errors import FaultError
from homeport.chaos.faults import register
from homeport.chaos.faults.region import RegionFault
from homeport.regions import stores
from homeport.regions.control import ControlPlane
from homeport.regions.etcd import ControlStoreUnavailable

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext
    from homeport.chaos.scenario import Scenario
    from homeport.regions.topology import Topology

WAIT_S = 45.0  # how long the step waits for the controller to start promoting
OPEN_S = 15.0  # how long it keeps trying to reach etcd while the members re-elect
T = TypeVar("T")


async def _retrying(op: Callable[[], Awaitable[T]]) -> T:
    """`op`, retried while etcd elects a leader: losing a region may take etcd's leader
    with it at the very moment this step watches ("etcdserver: leader changed")."""
    while True:
        try:
            return await op()
        except aetcd.ClientError:
            await asyncio.sleep(0.1)


async def _open(topology: Topology) -> ControlPlane:
    """A control-plane connection, retried while the members re-elect (this step starts
    as a region dies, and that region's member may be the leader)."""
    deadline = asyncio.get_running_loop().time() + OPEN_S
    while True:
        try:
            return await ControlPlane.open(topology, "client")
        except ControlStoreUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _until_promoting(cp: ControlPlane, home: str) -> None:
    """Return when `home`'s route moves to the standby's mirror; a watch broken by an
    etcd election is opened again (and the route read again, in case it moved then)."""
    while True:
        watch = cp.routing.changes()
        try:
            async for route in watch:
                if route.home == home and route.copy == "mirror":
                    return
        except aetcd.ClientError:
            await asyncio.sleep(0.1)
            if (await _retrying(lambda: cp.routing.load())).route(home).copy == "mirror":
                return
        finally:
            close = getattr(watch, "aclose", None)  # an async generator: stop its watch
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


@register
class KillController(RegionFault):
    name = "kill_controller"
    summary = "SIGKILL the controller's agent the moment it starts promoting `region`."

    def claims(self, scenario: Scenario) -> list[str]:
        return [f"controller {self.step.region}"]

    def resolve(self, scenario: Scenario, rng: random.Random) -> list[str]:
        return [self.step.region or ""]

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        home = targets[0]
        topo = ctx.control.topology
        cp = await _open(topo)
        try:
            try:
                async with asyncio.timeout(WAIT_S):
                    if (await _retrying(lambda: cp.routing.load())).route(home).copy == "mirror":
                        raise FaultError(f"{home} was already promoted when the step began")
                    await _until_promoting(cp, home)
            except TimeoutError:
                raise FaultError(
                    f"the controller did not start promoting {home} within {WAIT_S:g}s"
                ) from None
            leader = await _retrying(lambda: cp.etcd.get(cp.prefix("controller", "leader")))
            if leader is None:
                raise FaultError(f"{home} is being promoted but no controller leads")
            name = leader.value.decode().rsplit("-", 1)[0]  # agent-<region>-<pid>
            killed = await asyncio.to_thread(ctx.processes.kill, name)
            self.killed = name if killed else ""
            mid = (await stores.replication(cp.mirror(home))).role != "master"
        finally:
            await cp.close()
        when = "mid-promotion (mirror still a replica)" if mid else "after the mirror was promoted"
        return f"{'killed' if killed else 'could not kill'} {name}, the controller, {when}"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        if self.step.for_s is None:
            return ""
        name = getattr(self, "killed", "")
        done = bool(name) and ctx.processes.restart(name)
        return f"restarted {name}" if done else "restarted nothing"
