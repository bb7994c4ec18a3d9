"""`failback`: recover orphans, resync and switch a promoted home region back
(`homeport region failback --switch`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.chaos.faults import register
from homeport.chaos.faults.region import RegionFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext


@register
class Failback(RegionFault):
    name = "failback"
    summary = "Fail a promoted home region back, orphans recovered first."
    disruptive = False

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        return await ctx.control.failback(self.step.region or "")
