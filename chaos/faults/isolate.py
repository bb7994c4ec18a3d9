"""`isolate`: cut every link into and out of a region (clients, other regions, Raft
peers) and pause its etcd member; the region's own in-region links stay up, so its
Redis, PostgreSQL, gateway, agent and workers keep running, alone.

Why the etcd member is paused (SIGSTOP) rather than only cut off: etcd advertises one
peer URL per member, so the launcher has one proxy per member's *inbound* peer port
(`peers-><region>:etcd-peer`). Cutting it stops what others send to the member, but
the member still reaches the others' peer ports, so Raft sees a half partition. When
the isolated member is the Raft leader that half partition is worse than a clean one:
it keeps its leadership (check-quorum hears the followers), but the followers forward
lease keep-alives to the leader's peer URL, which is cut, so every lease in every region
expires. A stopped member is a clean partition: the others elect a leader within the
election timeout, and the isolated region's processes, like in a real partition, get
no answer from etcd. The member is resumed (SIGCONT) when the step ends.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from homeport.chaos.faults import register
from homeport.chaos.faults.region import RegionFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext
    from homeport.chaos.scenario import Scenario


@register
class Isolate(RegionFault):
    name = "isolate"
    summary = "Cut every link into and out of a region and pause its etcd member."

    @property
    def member(self) -> str:
        return f"etcd-{self.step.region}"

    def claims(self, scenario: Scenario) -> list[str]:
        links = scenario.catalog.links_of(self.step.region or "")
        return [f"link {link} down" for link in links] + [f"process {self.member}"]

    def resolve(self, scenario: Scenario, rng: random.Random) -> list[str]:
        return scenario.catalog.links_of(self.step.region or "")

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            ctx.toxiproxy.set_enabled(link, False)
        paused = ctx.processes.pause(self.member)
        return f"isolated {self.step.region}: {len(targets)} links down" + (
            f", {self.member} paused" if paused else f", {self.member} not running"
        )

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        ctx.processes.resume(self.member)
        for link in targets:
            ctx.toxiproxy.set_enabled(link, True)
        return f"{self.step.region} reconnected: {len(targets)} links up, {self.member} resumed"
