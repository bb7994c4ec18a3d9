"""`lose_region`: SIGKILL every process the region hosts (its Redis servers, the mirrors
of other regions it holds, its etcd member, gateway, workers, agent). With `for`, the
region comes back afterwards: every process is started again, Redis servers empty (they
keep no data on disk), as after a real outage. `region: etcd-leader` loses the region
whose etcd member leads the Raft group when the step runs (an election follows)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from homeport.chaos.faults import register
from homeport.chaos.faults.region import RegionFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext
    from homeport.chaos.scenario import Scenario


ETCD_LEADER = "etcd-leader"


@register
class LoseRegion(RegionFault):
    name = "lose_region"
    summary = "SIGKILL every process a region hosts; restart them after `for`."

    def check(self, scenario: Scenario) -> None:
        if self.step.region != ETCD_LEADER:
            super().check(scenario)

    def claims(self, scenario: Scenario) -> list[str]:
        region = self.step.region or ""
        if region == ETCD_LEADER:  # known only when the step runs: claim every region
            return [f"region {r}" for r in scenario.catalog.regions]
        return [f"region {region}"] + [
            f"process {c.name}" for c in scenario.catalog.hosted_by(region)
        ]

    def resolve(self, scenario: Scenario, rng: random.Random) -> list[str]:
        return [self.step.region or ""]

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        if targets[0] == ETCD_LEADER:
            # The targets list is the step's record: name the region that was lost.
            targets[0] = await ctx.control.etcd_leader()
        killed = ctx.processes.lose_region(targets[0])
        return f"lost {targets[0]}: killed {', '.join(killed)}"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        if self.step.for_s is None:
            return ""
        started = ctx.processes.restore_region(targets[0])
        return f"{targets[0]} back: restarted {', '.join(started)}"
