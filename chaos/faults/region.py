"""The shared shape of faults that act on a whole region (isolation, loss, promotion)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.chaos.faults import Fault

if TYPE_CHECKING:
    from homeport.chaos.scenario import Scenario


class RegionFault(Fault):
    def check(self, scenario: Scenario) -> None:
        regions = scenario.catalog.regions
        if self.step.region not in regions:
            raise self.refuse(
                "region", self.step.region, f"not a region of this topology; use one of {regions}"
            )
