"""`isolate`: cut every link into and out of a region (clients, other regions, Raft
peers); the region's own in-region links stay up, so it keeps running, alone."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from chaos.faults import register
from chaos.faults.region import RegionFault

if TYPE_CHECKING:
    from chaos.driver import FaultContext
    from chaos.scenario import Scenario


@register
class Isolate(RegionFault):
    name = "isolate"
    summary = "Cut every link into and out of a region."

    def claims(self, scenario: Scenario) -> list[str]:
        return [f"link {link} down" for link in scenario.catalog.links_of(self.step.region or "")]

    def resolve(self, scenario: Scenario, rng: random.Random) -> list[str]:
        return scenario.catalog.links_of(self.step.region or "")

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            ctx.toxiproxy.set_enabled(link, False)
        return f"isolated {self.step.region}: {len(targets)} links down"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            ctx.toxiproxy.set_enabled(link, True)
        return f"{self.step.region} reconnected: {len(targets)} links up"
