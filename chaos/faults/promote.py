"""`promote`: the manual promotion of a home region's standby (`homeport region
promote`), as an operator (or the controller) would run it mid game day."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.chaos.faults import register
from homeport.chaos.faults.region import RegionFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext


@register
class Promote(RegionFault):
    name = "promote"
    summary = "Promote a home region's standby (manual failover)."
    disruptive = False

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        return await ctx.control.promote(self.step.region or "")
